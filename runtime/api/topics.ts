// The notification topics a client can follow, over the WebSocket `subscribe` op and over SSE
// at /v1/events (docs/api.md "Notifications"): one source (runtime/topics.ts wires it) for both.

export const TOPICS = ['models', 'connectivity', 'events', 'metrics'] as const;
export type Topic = (typeof TOPICS)[number];

/** Attaches a listener for a topic; returns the function that detaches it. */
export type TopicSource = (topic: Topic, push: (data: unknown) => void) => () => void;
