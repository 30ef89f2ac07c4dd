/**
 * fast-check arbitraries shared by several test files. They live here, not in a test file, so that
 * importing them does not run another file's tests a second time.
 */
import fc from 'fast-check';
import { ETHERTYPE_QINQ, ETHERTYPE_VLAN } from '../src/wire/ethernet.js';

const macArb = fc.integer({ min: 0, max: 0xffff_ffff_ffff });
const tagArb = fc.record(
  { tpid: fc.constantFrom(ETHERTYPE_VLAN, ETHERTYPE_QINQ), pcp: fc.integer({ min: 0, max: 7 }), dei: fc.boolean(), vid: fc.integer({ min: 0, max: 4095 }) },
  { noNullPrototype: true },
);
export const ethernetReprArb = fc.record(
  {
    dst: macArb,
    src: macArb,
    vlans: fc.array(tagArb, { maxLength: 2 }),
    etherType: fc.integer({ min: 0x600, max: 0xffff }).filter((t) => t !== ETHERTYPE_VLAN && t !== ETHERTYPE_QINQ),
  },
  { noNullPrototype: true },
);

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
export const ipv4ReprArb = fc.record(
  {
    src: u32,
    dst: u32,
    protocol: fc.integer({ min: 0, max: 255 }),
    ttl: fc.integer({ min: 0, max: 255 }),
    dscp: fc.integer({ min: 0, max: 63 }),
    ecn: fc.integer({ min: 0, max: 3 }),
    ident: fc.integer({ min: 0, max: 0xffff }),
    dontFrag: fc.boolean(),
    moreFrags: fc.boolean(),
    fragOffset: fc.integer({ min: 0, max: 0x1fff }).map((x) => x * 8),
    options: fc.integer({ min: 0, max: 10 }).chain((w) => fc.uint8Array({ minLength: 4 * w, maxLength: 4 * w })),
    payloadLen: fc.integer({ min: 0, max: 64 }),
  },
  { noNullPrototype: true },
);

const addr = fc.uint8Array({ minLength: 16, maxLength: 16 });
export const ipv6ReprArb = fc.record(
  {
    src: addr,
    dst: addr,
    nextHeader: fc.integer({ min: 0, max: 255 }),
    hopLimit: fc.integer({ min: 0, max: 255 }),
    trafficClass: fc.integer({ min: 0, max: 255 }),
    flowLabel: fc.integer({ min: 0, max: 0xfffff }),
    payloadLen: fc.integer({ min: 0, max: 64 }),
  },
  { noNullPrototype: true },
);
