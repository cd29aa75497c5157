/**
 * The offsets of stored broadcasts, exactly as socket.io-adapter's
 * `SessionAwareAdapter` makes them with yeast: the time in milliseconds in
 * base 64, then ".0", ".1"... for the next ones within the same millisecond.
 *
 * yeast reads the clock itself (a `Date` object per call) and encodes it
 * again on every call; the store reads the clock anyway (for `emittedAt`),
 * so here the caller passes that reading, and the encoding of the current
 * millisecond is kept: a call costs a comparison and, within the same
 * millisecond, one concatenation.
 *
 * The base-64 encoding is written here rather than imported from
 * socket.io-adapter's `dist/contrib/yeast`: a deep import into another
 * package's build output would break the day that package declares its
 * `exports`. test/api-recovery.test.ts checks it against yeast call for call.
 */

/** yeast's alphabet, most significant digit first. */
const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";

/** `n` (a non-negative integer) in base 64 over {@link ALPHABET}, as yeast's `encode`. */
export function encodeBase64(n: number): string {
  let text = "";
  do {
    text = ALPHABET[n % 64] + text;
    n = Math.floor(n / 64);
  } while (n > 0);
  return text;
}

/** The suffixes ".0" to ".4095", the most offsets one millisecond usually takes. */
const SUFFIXES = Array.from({ length: 4096 }, (_, seed) => "." + encodeBase64(seed));

let lastMs = Number.NaN;
let lastText = "";
let seed = 0;

/**
 * The offset of a broadcast stored at `now` (Date.now()): yeast's value at
 * that time. As with yeast, unique while the clock does not go back.
 */
export function nextOffset(now: number): string {
  if (now !== lastMs) {
    const text = encodeBase64(now);
    lastMs = now;
    // yeast compares the encodings, not the times: the same for whole milliseconds.
    if (text !== lastText) {
      lastText = text;
      seed = 0;
      return text;
    }
  }
  const n = seed++;
  return lastText + (n < SUFFIXES.length ? SUFFIXES[n] : "." + encodeBase64(n));
}
