import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  describeOverhead,
  ESP_CIPHERS,
  espMaxOverhead,
  espOverhead,
  overheadFor,
  podMtu,
  POD_MTU_CAP,
  tunnelOverhead,
  type EspCipher,
  type OverheadSpec,
} from '../../src/mtu/overhead.js';

const CIPHERS = Object.keys(ESP_CIPHERS) as EspCipher[];

/**
 * The golden table: Antrea's figures for a 1500-byte IPv4 underlay (pkg/agent/config: VXLAN and Geneve
 * 50 bytes, GRE 42, IPsec a fixed 38-byte allowance on top of Geneve), the same tunnels over IPv6 (20
 * more bytes each, as Antrea's ipv6ExtraOverhead) and over a 9000-byte underlay, and the exact ESP figures.
 */
const GOLDEN: Array<[OverheadSpec, number, number]> = [
  [{ tunnel: 'vxlan', underlay: 4 }, 1450, 8950],
  [{ tunnel: 'geneve', underlay: 4 }, 1450, 8950],
  [{ tunnel: 'gre', underlay: 4 }, 1458, 8958],
  [{ tunnel: 'geneve', underlay: 4, espAllowance: 38 }, 1412, 8912],
  [{ tunnel: 'vxlan', underlay: 6 }, 1430, 8930],
  [{ tunnel: 'geneve', underlay: 6 }, 1430, 8930],
  [{ tunnel: 'gre', underlay: 6 }, 1438, 8938],
  [{ tunnel: 'geneve', underlay: 6, espAllowance: 38 }, 1392, 8892],
  [{ tunnel: 'gre', underlay: 4, greKey: false }, 1462, 8962],
  [{ tunnel: 'geneve', underlay: 4, geneveOptionBytes: 8 }, 1442, 8942],
  // Exact ESP (8 header + 8 IV + 2 trailer + 16 ICV = 34 bytes, plus padding to 4): at 1500 the padding
  // happens to be 0 over both families, so Geneve + ESP is 1416 where Antrea's allowance gives 1412.
  [{ tunnel: 'geneve', underlay: 4, esp: { cipher: 'aes-gcm-128' } }, 1416, 8916],
  [{ tunnel: 'geneve', underlay: 4, esp: { cipher: 'chacha20-poly1305' } }, 1416, 8916],
  [{ tunnel: 'vxlan', underlay: 4, esp: { cipher: 'aes-gcm-256' } }, 1416, 8916],
  [{ tunnel: 'geneve', underlay: 6, esp: { cipher: 'aes-gcm-128' } }, 1396, 8896],
  [{ tunnel: 'geneve', underlay: 4, esp: { cipher: 'aes-gcm-128', udpEncap: true } }, 1408, 8908],
  [{ tunnel: 'gre', underlay: 4, esp: { cipher: 'aes-gcm-128' } }, 1424, 8924],
];

test("overhead: golden pod MTUs for 1500 and 9000 underlays, Antrea's figures included", () => {
  for (const [spec, at1500, at9000] of GOLDEN) {
    assert.equal(podMtu(1500, spec), at1500, `${describeOverhead(spec)} at 1500`);
    assert.equal(podMtu(9000, spec), at9000, `${describeOverhead(spec)} at 9000`);
  }
  assert.equal(tunnelOverhead({ tunnel: 'vxlan', underlay: 4 }), 50);
  assert.equal(tunnelOverhead({ tunnel: 'gre', underlay: 6 }), 62);
  assert.equal(espOverhead({ cipher: 'aes-gcm-128' }, 1446), 34);
  assert.equal(espMaxOverhead({ cipher: 'chacha20-poly1305' }), 37);
  assert.equal(espMaxOverhead({ cipher: 'aes-gcm-256', udpEncap: true }), 45);
});

test("overhead: pod MTUs are capped at 65,000 (kind's 65,535-byte node MTU)", () => {
  assert.equal(podMtu(65535, { tunnel: 'vxlan', underlay: 4 }), POD_MTU_CAP);
  assert.equal(podMtu(65535, { tunnel: 'geneve', underlay: 6, esp: { cipher: 'aes-gcm-128' } }), POD_MTU_CAP);
  assert.equal(podMtu(65050, { tunnel: 'vxlan', underlay: 4 }), 65000);
  assert.equal(podMtu(65049, { tunnel: 'vxlan', underlay: 4 }), 64999);
});

/**
 * Linux's own arithmetic, written from net/ipv4/esp4.c and net/ipv6/esp6.c (`esp4_get_mtu`,
 * `esp6_get_mtu`, transport mode): the largest packet before ESP is
 * ((mtu − header_len − authsize − net_adj) & ~(align − 1)) + net_adj − 2, where header_len is the ESP
 * header, the IV and, for ESP-in-UDP, the UDP header, and net_adj the IP header left in front.
 */
function linuxEspMtu(mtu: number, cipher: EspCipher, v: 4 | 6, udpEncap: boolean): number {
  const c = ESP_CIPHERS[cipher];
  const headerLen = 8 + c.ivLen + (udpEncap ? 8 : 0);
  const align = Math.max(4, c.blockSize);
  const netAdj = v === 4 ? 20 : 40;
  return ((mtu - headerLen - c.icvLen - netAdj) & ~(align - 1)) + netAdj - 2;
}

test("overhead: with ESP the pod MTU agrees with Linux's esp4/esp6_get_mtu, and is the largest that fits", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 600, max: 65535 }),
      fc.constantFrom(...CIPHERS),
      fc.constantFrom<4 | 6>(4, 6),
      fc.boolean(),
      fc.constantFrom<OverheadSpec['tunnel']>('vxlan', 'geneve', 'gre'),
      fc.integer({ min: 0, max: 4 }),
      (mtu, cipher, underlay, udpEncap, tunnel, optWords) => {
        const spec: OverheadSpec = { tunnel, underlay, esp: { cipher, udpEncap }, ...(tunnel === 'geneve' ? { geneveOptionBytes: 4 * optWords } : {}) };
        const pod = podMtu(mtu, spec);
        const outerBeforeEsp = tunnelOverhead(spec) + pod;
        if (pod < POD_MTU_CAP) {
          // The outer packet before ESP is as large as Linux allows, and every size up to it fits.
          assert.equal(outerBeforeEsp, linuxEspMtu(mtu, cipher, underlay, udpEncap));
          assert.ok(pod + 1 + overheadFor(spec, pod + 1) > mtu, 'one more byte does not fit');
        }
        for (const x of [pod, pod - 1, pod - 2, pod - 3, Math.floor(pod / 2)]) if (x > 0) assert.ok(x + overheadFor(spec, x) <= mtu, `${x} fits`);
      },
    ),
    { numRuns: 500 },
  );
});

test('overhead: bad specs are refused with the key and what was expected', () => {
  const bad: Array<[unknown, RegExp]> = [
    [{ tunnel: 'ipip', underlay: 4 }, /tunnel ipip is not vxlan, geneve or gre/],
    [{ tunnel: 'vxlan', underlay: 5 }, /underlay 5 is not 4 or 6/],
    [{ tunnel: 'geneve', underlay: 4, geneveOptionBytes: 6 }, /geneveOptionBytes 6 is not a multiple of 4/],
    [{ tunnel: 'vxlan', underlay: 4, geneveOptionBytes: 8 }, /geneveOptionBytes apply to geneve only/],
    [{ tunnel: 'vxlan', underlay: 4, esp: { cipher: 'des' } }, /ESP cipher des is not one of/],
    [{ tunnel: 'vxlan', underlay: 4, espAllowance: -1 }, /espAllowance -1/],
  ];
  for (const [spec, re] of bad)
    assert.throws(
      () => podMtu(1500, spec as OverheadSpec),
      (e: unknown) => e instanceof RangeError && re.test(e.message),
      JSON.stringify(spec),
    );
  assert.throws(() => podMtu(67, { tunnel: 'vxlan', underlay: 4 }), /underlay MTU 67/);
  assert.throws(() => podMtu(70, { tunnel: 'vxlan', underlay: 6 }), /leaves no room/);
});
