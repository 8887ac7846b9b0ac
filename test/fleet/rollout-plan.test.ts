// Targeting flags (cli/targets.ts) and rollout flags (rollout/plan.ts): exactly one of --device,
// --select, --all; selectors match reported labels; empty selections refused by code; waves,
// bake and percentages parsed strictly.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PerchError } from '../../runtime/base/errors.js';
import { labelsSchema } from '../../runtime/config/labels.js';
import { UsageError } from '../../cloud-sync/fleet/cli/options.js';
import { parseTargets, resolveTargets } from '../../cloud-sync/fleet/cli/targets.js';
import { parseDuration, parsePercent, parseWaves, waveSizes } from '../../cloud-sync/fleet/rollout/plan.js';

const known = [
  { deviceId: 'c', status: { labels: { site: 'kitchen', hw: 'pi4' } }, reported: null },
  { deviceId: 'a', status: { labels: { site: 'kitchen', hw: 'pi5' } }, reported: null },
  // Labels from the reported state when the status (an older device's) has none.
  { deviceId: 'b', status: { online: true }, reported: { labels: { site: 'garage', hw: 'pi4' } } },
  { deviceId: 'd', status: null, reported: null },
];

test('exactly one of --device, --select, --all', () => {
  assert.throws(() => parseTargets({}), (e: unknown) => e instanceof UsageError && /name the devices/.test(e.message));
  assert.throws(() => parseTargets({ device: ['a'], all: true }), (e: unknown) => e instanceof UsageError && /ambiguous target: --device and --all/.test(e.message));
  assert.throws(() => parseTargets({ select: 'site=x', all: true }), /ambiguous/);
  assert.throws(() => parseTargets({ device: ['a/b'] }), /--device 'a\/b'/);
  assert.deepEqual(parseTargets({ device: ['b', 'a', 'b'] }), { kind: 'devices', ids: ['b', 'a'] });
  assert.deepEqual(parseTargets({ all: true }), { kind: 'all' });
});

test('--select: key=value pairs, checked, matched against reported labels', () => {
  assert.deepEqual(parseTargets({ select: 'site=kitchen,hw=pi4' }), { kind: 'select', labels: { site: 'kitchen', hw: 'pi4' } });
  for (const bad of ['', 'site', '=x', 'site=a=b', 'si te=x', 'site=kitchen,site=garage']) {
    assert.throws(() => parseTargets({ select: bad }), UsageError, bad);
  }
  assert.deepEqual(resolveTargets(parseTargets({ select: 'site=kitchen' }), known), ['a', 'c']);
  assert.deepEqual(resolveTargets(parseTargets({ select: 'hw=pi4' }), known), ['b', 'c']);
  assert.deepEqual(resolveTargets(parseTargets({ select: 'site=kitchen,hw=pi4' }), known), ['c']);
  assert.deepEqual(resolveTargets(parseTargets({ all: true }), known), ['a', 'b', 'c', 'd']);
  assert.throws(
    () => resolveTargets(parseTargets({ select: 'site=attic' }), known),
    (e: unknown) => e instanceof PerchError && e.code === 'PERCH_ERR_NO_DEVICES_SELECTED' && /--select site=attic matches no device/.test(e.message),
  );
  assert.throws(() => resolveTargets(parseTargets({ all: true }), []), (e: unknown) => e instanceof PerchError && e.code === 'PERCH_ERR_NO_DEVICES_SELECTED');
});

test('device.labels is bounded and spelled so a selector can name it', () => {
  assert.ok(labelsSchema.safeParse({ site: 'kitchen', 'hw/rev': 'pi4:b', empty: '' }).success);
  assert.equal(labelsSchema.safeParse({ site: 'a,b' }).success, false);
  assert.equal(labelsSchema.safeParse({ 'a=b': 'x' }).success, false);
  assert.equal(labelsSchema.safeParse({ k: 'x'.repeat(64) }).success, false);
  assert.equal(labelsSchema.safeParse(Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v']))).success, false);
});

test('waves: counts and percentages, cumulative, ending at 100%', () => {
  const w = parseWaves('1,10%,50%,100%');
  assert.deepEqual(waveSizes(w, 100), [1, 9, 40, 50]);
  assert.deepEqual(waveSizes(w, 3), [1, 1, 1]);
  assert.deepEqual(waveSizes(parseWaves('1,100%'), 3), [1, 2]);
  // Waves adding no device are left out.
  assert.deepEqual(waveSizes(w, 1), [1]);
  assert.deepEqual(waveSizes(parseWaves('1%,10%,100%'), 10_000), [100, 900, 9000]);
  for (const bad of ['', '1,,100%', '0,100%', '1,50%', '150%,100%', 'x,100%', '1.5,100%']) assert.throws(() => parseWaves(bad), UsageError, bad);
});

test('bake durations and percentages', () => {
  assert.equal(parseDuration('0', 'bake'), 0);
  assert.equal(parseDuration('500ms', 'bake'), 500);
  assert.equal(parseDuration('30s', 'bake'), 30_000);
  assert.equal(parseDuration('5m', 'bake'), 300_000);
  assert.equal(parseDuration('1h', 'bake'), 3_600_000);
  for (const bad of ['30', '-1s', '1d', 's']) assert.throws(() => parseDuration(bad, 'bake'), UsageError, bad);
  assert.equal(parsePercent('10', 'max-failures'), 10);
  assert.equal(parsePercent('2.5%', 'max-failures'), 2.5);
  assert.throws(() => parsePercent('101', 'max-failures'), UsageError);
});
