/**
 * Observing devices: hooks see every frame both ways with the clock's time, and a capture point written
 * in memory and one streamed to a sink are the same pcapng file, with one interface named after the point.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PcapngParser } from '../../src/capture/index.js';
import { vethPair } from '../../src/datapath/device.js';
import { PacketBatch } from '../../src/packet/buf.js';
import { ObservedDevice, PcapngCapture } from '../../src/datapath/observe.js';
import { frame, hostMac, newBridge, newNet, addHost, assertPoolFull } from './topology.js';

test("ObservedDevice: onTx and onRx see each frame at the clock's time; the wrapped device works as before", () => {
  const net = newNet();
  const br = newBridge(net, 'b');
  const a = addHost(br, net, 'a', hostMac(1));
  const [inner, far] = vethPair('v', 'w', { macA: hostMac(2) });
  const seen: string[] = [];
  const dev = new ObservedDevice(
    inner,
    net.clock,
    (p, now) => seen.push(`tx ${p.length} @${now}`),
    (p, now) => seen.push(`rx ${p.length} @${now}`),
  );
  br.addPort('v', dev);
  const got: number[] = [];
  far.setReceiver((b) => {
    for (let i = 0; i < b.length; i++) {
      got.push(b.get(i).length);
      b.get(i).release();
    }
    b.clear();
  });
  net.clock.t = 1000;
  a.ep.send([frame({ src: a.mac, dst: hostMac(2), pad: 60 })]);
  net.clock.t = 2500;
  const p = net.pool.alloc()!;
  p.load(frame({ src: hostMac(2), dst: a.mac }));
  const b = new PacketBatch();
  b.add(p);
  far.transmit(b);
  assert.deepEqual(seen, ['tx 78 @1000', 'rx 60 @2500']);
  assert.deepEqual(got, [78]);
  assert.equal(a.ep.take().length, 1);
  dev.onTx = dev.onRx = null;
  a.ep.send([frame({ src: a.mac, dst: hostMac(2) })]);
  assert.equal(seen.length, 2, 'cleared hooks see nothing');
  assert.equal(got.length, 2);
  assert.equal(dev.name, 'v');
  assert.equal(dev.mac, hostMac(2));
  assertPoolFull(net.pool);
});

test('PcapngCapture: in memory and streamed to a sink, the same file; one interface named after the capture point; ns timestamps', () => {
  const net = newNet();
  const streamed: Uint8Array[] = [];
  const mem = new PcapngCapture('node1/pod');
  const str = new PcapngCapture('node1/pod', (c) => streamed.push(c));
  assert.throws(() => str.bytes(), /streams to a sink/);
  const br = newBridge(net, 'b');
  const a = addHost(br, net, 'a', hostMac(1));
  const [inner] = vethPair('v', 'w');
  br.addPort('v', str.observe(mem.observe(inner, net.clock), net.clock));
  net.clock.t = 1_234_567_891;
  a.ep.send([frame({ src: a.mac, dst: hostMac(9), id: 7 })]);
  assert.equal(mem.packets, 1);
  assert.deepEqual(Uint8Array.from(mem.bytes()), Uint8Array.from(Buffer.concat(streamed)));
  const parser = new PcapngParser();
  parser.push(mem.bytes());
  parser.end();
  const recs = [...parser.records()];
  assert.equal(recs.length, 1);
  assert.deepEqual(
    parser.interfaces.map((i) => i.name),
    ['node1/pod'],
  );
  assert.equal(recs[0]!.timestampNs, 1_234_567_891n);
  assert.deepEqual(Uint8Array.from(recs[0]!.data), frame({ src: a.mac, dst: hostMac(9), id: 7 }));
  assertPoolFull(net.pool);
});
