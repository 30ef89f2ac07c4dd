/**
 * The part of sodium-native 5's public API that `esp/aead.ts` uses (the package ships no types). The
 * wrapper asserts every size before it calls libsodium; `decrypt_detached` throws when the tag does not
 * verify (its output is then zero-filled).
 */
declare module 'sodium-native' {
  interface Sodium {
    readonly crypto_aead_chacha20poly1305_ietf_KEYBYTES: number;
    readonly crypto_aead_chacha20poly1305_ietf_NPUBBYTES: number;
    readonly crypto_aead_chacha20poly1305_ietf_ABYTES: number;
    /**
     * Encrypts `m` into `c` (same length; may be the same bytes) and writes the 16-byte tag into `mac`.
     * `ad` is the additional data, `nsec` always null, `npub` the 12-byte nonce, `k` the 32-byte key.
     * Returns the tag length.
     */
    crypto_aead_chacha20poly1305_ietf_encrypt_detached(
      c: Uint8Array,
      mac: Uint8Array,
      m: Uint8Array,
      ad: Uint8Array | null,
      nsec: null,
      npub: Uint8Array,
      k: Uint8Array,
    ): number;
    /**
     * Verifies `mac` over `ad` and `c`, then decrypts `c` into `m` (same length; may be the same bytes).
     * Throws when the tag does not verify: `m` is then zero-filled and nothing was decrypted.
     */
    crypto_aead_chacha20poly1305_ietf_decrypt_detached(
      m: Uint8Array,
      nsec: null,
      c: Uint8Array,
      mac: Uint8Array,
      ad: Uint8Array | null,
      npub: Uint8Array,
      k: Uint8Array,
    ): void;
  }
  const sodium: Sodium;
  export default sodium;
}
