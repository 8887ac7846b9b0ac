// Control plane first over WebSocket (docs/reliability.md "Control plane first"): the intake
// parks connections that bring inference work while the event loop lags, and never one that only
// asks for status, subscribes or emits one message at a time. Every WebSocket frame was paced
// until 30 November 2026, so a monitoring client polling `status` was parked with the flood; one
// that pipelines status is paced still (a flood of it slowed health as much as inference). The runtime's intake is
// watched here (its pace() counted per connection): a lag cannot be made on demand inside a
// real server's read, and the rule is which frames are paced at all.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WsClient } from '../helpers/clients.js';
import { vadInputs } from '../helpers/models.js';
import { MODEL_FILES } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { startRuntime, type TestRuntime } from '../helpers/runtime.js';
import { vadModelJson } from '../helpers/scenarios.js';
import type { Parkable } from '../../runtime/api/intake.js';
import { mayInfer } from '../../runtime/api/ws/may-infer.js';

describe('WebSocket frames the intake paces', () => {
  let repo: TempRepository;
  let rt: TestRuntime;
  const paced = new Map<Parkable, number>();

  before(async () => {
    repo = new TempRepository({ vad: { versions: { 1: MODEL_FILES.sileroVad16k }, config: vadModelJson(16) } });
    rt = await startRuntime(repo.dir);
    const intake = rt.runtime.intake;
    const pace = intake.pace.bind(intake);
    intake.pace = (conn: Parkable): void => {
      paced.set(conn, (paced.get(conn) ?? 0) + 1);
      pace(conn);
    };
  });
  after(async () => {
    await rt?.stop();
    repo?.remove();
  });

  test('a connection that asks for status, subscribes and emits, one message at a time, is never paced; each infer frame is, text or binary', async () => {
    const control = await WsClient.connect(rt.wsUrl);
    const work = await WsClient.connect(rt.wsUrl);
    try {
      for (let i = 0; i < 5; i++) assert.ok((await control.request({ op: 'status' })).ok);
      assert.ok((await control.request({ op: 'subscribe', topics: ['models'] })).ok);
      assert.ok((await control.request({ op: 'emit', type: 'door.opened', payload: { at: 1 } })).ok);
      assert.equal(paced.size, 0, 'nothing of the control connection paced');
      assert.ok((await work.infer('vad', vadInputs(1), { binary: true })).ok);
      assert.ok((await work.infer('vad', vadInputs(2))).ok);
      // An op spelled with an escape is still inference, and paced as such.
      work.sendRaw('{"id":"escaped","op":"\\u0069nfer","model":"vad","inputs":[]}');
      const escaped = await work.nextOrphan();
      assert.equal(escaped.id, 'escaped');
      assert.equal(escaped.ok, false, 'an infer message without its inputs');
      assert.deepEqual([...paced.values()], [3], 'the infer connection, once per frame');
    } finally {
      await control.close();
      await work.close();
    }
  });

  test('a connection that pipelines status is paced like inference: a flood of it is no poller', async () => {
    paced.clear();
    const flood = await WsClient.connect(rt.wsUrl);
    try {
      // Five frames in one write: they are read together, the first one still unanswered when the next comes.
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- ws keeps its net.Socket private
      const socket = (flood.socket as any)._socket as { cork(): void; uncork(): void };
      socket.cork();
      const answers = Array.from({ length: 5 }, () => flood.request({ op: 'status' }));
      socket.uncork();
      for (const a of await Promise.all(answers)) assert.ok(a.ok);
      assert.deepEqual([...paced.values()], [4], 'every frame that came while one was unanswered');
    } finally {
      await flood.close();
    }
  });

  test('a text frame can be an infer message only if it holds "infer" or an escape; larger ones are not looked at', () => {
    const text = (s: string): boolean => mayInfer(Buffer.from(s), false);
    assert.equal(text('{"id":1,"op":"status"}'), false);
    assert.equal(text('{"id":1,"op":"subscribe","topics":["metrics"]}'), false);
    assert.equal(text('{"id":1,"op":"infer","model":"m","inputs":[]}'), true);
    assert.equal(text('{"id":1,"op":"status","op":"infer"}'), true, 'JSON.parse keeps the last of two keys');
    assert.equal(text('{"id":1,"op":"\\u0069nfer"}'), true, 'an escaped op');
    assert.equal(text('{"id":1,"\\u006fp":"status"}'), true);
    assert.equal(text(`{"id":1,"op":"emit","type":"t","payload":"${'x'.repeat(5000)}"}`), true, 'past 4 KiB: not looked at');
    assert.equal(mayInfer(Buffer.from('{"id":1,"op":"status"}'), true), true, 'a binary frame is inference');
  });
});
