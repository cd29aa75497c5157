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
 */
import { encode } from "socket.io-adapter/dist/contrib/yeast";

/** The suffixes ".0" to ".4095", the most offsets one millisecond usually takes. */
const SUFFIXES = Array.from({ length: 4096 }, (_, seed) => "." + encode(seed));

let lastMs = Number.NaN;
let lastText = "";
let seed = 0;

/**
 * The offset of a broadcast stored at `now` (Date.now()): yeast's value at
 * that time. As with yeast, unique while the clock does not go back.
 */
export function nextOffset(now: number): string {
  if (now !== lastMs) {
    const text = encode(now);
    lastMs = now;
    // yeast compares the encodings, not the times: the same for whole milliseconds.
    if (text !== lastText) {
      lastText = text;
      seed = 0;
      return text;
    }
  }
  const n = seed++;
  return lastText + (n < SUFFIXES.length ? SUFFIXES[n] : "." + encode(n));
}
