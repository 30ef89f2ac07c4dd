/**
 * The part of sodium-native 5 that `esp/aead.ts` uses: its raw N-API binding (`sodium-native/binding.js`,
 * which the package's `index.js` wraps with argument asserts). The raw functions return libsodium's status
 * instead of throwing — a forged packet costs no exception — but they check nothing: every argument must
 * be a typed array of exactly the size libsodium expects (the binding's C asserts are all that stand
 * between a wrong size and memory corruption), so `aead.ts` checks sizes before each call.
 */
declare module 'sodium-native/binding.js' {
  interface SodiumBinding {
    readonly crypto_aead_chacha20poly1305_ietf_KEYBYTES: number;
    readonly crypto_aead_chacha20poly1305_ietf_NPUBBYTES: number;
    readonly crypto_aead_chacha20poly1305_ietf_ABYTES: number;
    /**
     * Encrypts `m` into `c` (same length; may be the same bytes) and writes the 16-byte tag into `mac`.
     * `ad` is the additional data, `npub` the 12-byte nonce, `k` the 32-byte key. Returns the tag length.
     */
    crypto_aead_chacha20poly1305_ietf_encrypt_detached(
      c: Uint8Array, mac: Uint8Array, m: Uint8Array, ad: Uint8Array | undefined, npub: Uint8Array, k: Uint8Array,
    ): number;
    /**
     * Verifies `mac` over `ad` and `c`, then decrypts `c` into `m` (same length; may be the same bytes).
     * Returns 0, or -1 when the tag does not verify: `m` is then zero-filled and nothing was decrypted.
     */
    crypto_aead_chacha20poly1305_ietf_decrypt_detached(
      m: Uint8Array, c: Uint8Array, mac: Uint8Array, ad: Uint8Array | undefined, npub: Uint8Array, k: Uint8Array,
    ): number;
  }
  const binding: SodiumBinding;
  export default binding;
}
