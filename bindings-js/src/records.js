// Writes finished spans into a span record buffer (docs/record-buffer.md): many spans cross into the
// core in one call. Repeated keys and names are sent once per buffer through string slots.

const TAG_STRING = 0;
const TAG_FALSE = 1;
const TAG_TRUE = 2;
const TAG_INT = 3;
const TAG_DOUBLE = 4;
const TAG_BYTES = 5;
const TAG_ARRAY = 6;
const TAG_MAP = 7;
const MAX_DEPTH = 8;
const MAX_INTERNED = 4096;
const TWO32 = 4294967296;
const utf8 = new TextEncoder();

const MAX_SLOTS = 65536;
// Keys and names get persistent slot numbers below MAX_INTERNED; repeated string values get
// per-buffer slots from VALUE_SLOTS up.
const VALUE_SLOTS = MAX_INTERNED;
// Positional caches: attribute `i` of one span is usually the same key (and often the same value) as
// attribute `i` of the span before, because the same code path set it.
const POSITIONS = 32;

// "TXR1", the anchor (u64), and the sampled-out and span counts as 5-byte varints.
const HEADER_BYTES = 22;

/** Writes `v` (below 2^35) at `p` of `b` as a varint padded to 5 bytes (LEB128 allows it). */
function putPadded(b, p, v) {
  for (let i = 0; i < 4; i++) {
    b[p + i] = (v % 128) | 128;
    v = Math.floor(v / 128);
  }
  b[p + 4] = v;
}

/** Writes varint `v` (below 2^21) at `p` of `b`, returning the position after it. */
function putSmall(b, p, v) {
  if (v >= 128) {
    if (v >= 16384) {
      b[p++] = (v & 127) | 128;
      v >>>= 7;
    }
    b[p++] = (v & 127) | 128;
    v >>>= 7;
  }
  b[p] = v;
  return p + 1;
}

export class RecordWriter {
  /** @param {number} anchorMs unix ms at host clock 0 */
  constructor(anchorMs) {
    // Whole ms and the fraction apart: anchorMs × 1e6 (~1.8e18) as one double would round the
    // anchor to a multiple of 256 ns, shifting every span of a whole-ms clock (Workers) off the ms.
    const whole = Math.floor(anchorMs);
    const ns = BigInt(whole) * 1000000n + BigInt(Math.round((anchorMs - whole) * 1e6));
    this.anchorLo = Number(ns & 0xffffffffn);
    this.anchorHi = Number(ns >> 32n);
    this.buf = new Uint8Array(64 * 1024);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
    this.count = 0; // spans in the buffer being filled
    this.busy = false; // encoding a span (which may run user code: getters, toString)
    this.later = null; // spans ended meanwhile, written after it
    this.slots = new Map();
    this.bound = new Uint32Array(MAX_INTERNED);
    this.gen = 0;
    this.nameStr = null;
    this.nameSlot = 0;
    this.keyStr = new Array(POSITIONS).fill(null);
    this.keySlot = new Int32Array(POSITIONS);
    this.valStr = new Array(POSITIONS).fill(null);
    this.valSlot = new Int32Array(POSITIONS);
    this.valGen = new Uint32Array(POSITIONS);
    this.nextValSlot = VALUE_SLOTS;
  }

  /**
   * Appends one finished span to the buffer being filled (starting one if none is). Spans are written
   * as they end, while they are still in the CPU's caches and before they become garbage, rather
   * than queued and written in bulk. Returns null, or, when the span could not be encoded (an
   * attribute's getter threw, …), the error: the span is left out and the caller must `finish` the
   * buffer now (`finish` keeps what was written before it).
   */
  add(s) {
    if (this.busy) {
      // Ended by user code that encoding the current span ran (an attribute getter): written
      // after it, not into the middle of its record.
      (this.later || (this.later = [])).push(s);
      return null;
    }
    if (this.count === 0) this.begin();
    const mark = this.pos;
    this.busy = true;
    try {
      this.span(s);
    } catch (e) {
      // Slots the failed record bound are not defined in the buffer: no record may follow.
      this.pos = mark;
      this.busy = false;
      return e;
    }
    this.busy = false;
    this.count++;
    return this.later === null ? null : this.addLater();
  }

  /** Writes the spans deferred by `add`, in order; after an error the rest stay deferred. */
  addLater() {
    let e = null;
    while (e === null && this.later !== null) {
      const s = this.later.shift();
      if (this.later.length === 0) this.later = null;
      e = this.add(s);
    }
    return e;
  }

  /** Spans deferred by `add` and not written yet (after an encoding error): the caller re-adds them. */
  takeLater() {
    const later = this.later || [];
    this.later = null;
    return later;
  }

  /** Starts a buffer: header, with the two counts as fixed-width varints that `finish` fills in. */
  begin() {
    this.gen++;
    this.nextValSlot = VALUE_SLOTS;
    this.pos = 0;
    this.ensure(32);
    const b = this.buf;
    b[0] = 0x54;
    b[1] = 0x58;
    b[2] = 0x52;
    b[3] = 0x31; // "TXR1"
    this.view.setUint32(4, this.anchorLo, true);
    this.view.setUint32(8, this.anchorHi, true);
    this.pos = HEADER_BYTES;
  }

  /**
   * Completes the buffer with a count of sampled-out spans; returns a view of it, valid until the
   * next `add`. The next `add` starts a new buffer.
   */
  finish(sampledOut) {
    if (this.count === 0) this.begin();
    putPadded(this.buf, 12, sampledOut);
    putPadded(this.buf, 17, this.count);
    this.count = 0;
    return this.buf.subarray(0, this.pos);
  }

  /** Encodes `spans` (and a count of sampled-out spans) into one buffer; returns a view valid until the next call. */
  write(spans, sampledOut) {
    for (let i = 0; i < spans.length; i++) {
      const e = this.add(spans[i]);
      if (e !== null) {
        this.count = 0;
        throw e;
      }
    }
    return this.finish(sampledOut);
  }

  ensure(n) {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  varint(v) {
    this.ensure(10);
    const b = this.buf;
    while (v >= 128) {
      b[this.pos++] = (v % 128) | 128;
      v = Math.floor(v / 128);
    }
    b[this.pos++] = v;
  }

  /** A varint below 2^21 where room was ensured by the caller. */
  small(v) {
    this.pos = putSmall(this.buf, this.pos, v);
  }

  u32be(w) {
    const b = this.buf;
    const p = this.pos;
    b[p] = w >>> 24;
    b[p + 1] = w >>> 16;
    b[p + 2] = w >>> 8;
    b[p + 3] = w;
    this.pos = p + 4;
  }

  f64(x) {
    this.view.setFloat64(this.pos, x, true);
    this.pos += 8;
  }

  /** A literal string (`h = 2 × bytes`). */
  str(s) {
    const n = s.length;
    if (n < 64) {
      this.ensure(1 + n);
      const b = this.buf;
      let p = this.pos + 1;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 128) break;
        b[p++] = c;
      }
      if (i === n) {
        b[this.pos] = n << 1;
        this.pos = p;
        return;
      }
    }
    const bytes = utf8.encode(s);
    this.varint(bytes.length * 2);
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** A string likely to repeat (keys, names): bound to a slot once per buffer, then referenced. */
  interned(s) {
    const slot = this.slots.get(s);
    if (slot === undefined) return this.newSlot(s);
    this.slotted(s, slot);
  }

  /** The slot of key or name `s` when it has none yet; a literal once the table is full. */
  newSlot(s) {
    if (this.slots.size >= MAX_INTERNED) return this.str(s);
    const slot = this.slots.size;
    this.slots.set(s, slot);
    this.slotted(s, slot);
    return slot;
  }

  /** Slot `slot` holding `s`: its definition the first time in this buffer, then references. */
  slotted(s, slot) {
    if (this.bound[slot] === this.gen) {
      this.ensure(3);
      this.small(slot * 4 + 3);
    } else {
      this.bound[slot] = this.gen;
      this.define(slot, s);
    }
  }

  /** A slot definition: `h = 4 × slot + 1`, the UTF-8 length, the bytes. */
  define(slot, s) {
    this.ensure(3);
    this.small(slot * 4 + 1);
    const mark = this.pos;
    this.str(s);
    // `str` wrote `2 × len` as the length prefix; the definition wants `len`. Patch the one-byte
    // common case in place, otherwise rewrite.
    if (this.buf[mark] < 128) {
      this.buf[mark] >>= 1;
    } else {
      const bytes = utf8.encode(s);
      this.pos = mark;
      this.varint(bytes.length);
      this.ensure(bytes.length);
      this.buf.set(bytes, this.pos);
      this.pos += bytes.length;
    }
  }

  /** Attribute key `s` at position `i` (room for 3 bytes ensured). */
  key(s, i) {
    let slot;
    if (i < POSITIONS && this.keyStr[i] === s) {
      slot = this.keySlot[i];
    } else {
      slot = this.slots.get(s);
      if (slot === undefined) {
        slot = this.newSlot(s);
        if (slot !== undefined && i < POSITIONS) {
          this.keyStr[i] = s;
          this.keySlot[i] = slot;
        }
        return;
      }
      if (i < POSITIONS) {
        this.keyStr[i] = s;
        this.keySlot[i] = slot;
      }
    }
    if (this.bound[slot] === this.gen) this.small(slot * 4 + 3);
    else {
      this.bound[slot] = this.gen;
      this.define(slot, s);
    }
  }

  /** Attribute value `v` at position `i` (room for 9 bytes ensured). */
  attrValue(v, i) {
    if (typeof v === 'string') {
      this.buf[this.pos++] = TAG_STRING;
      if (i < POSITIONS) {
        if (this.valStr[i] === v) {
          if (this.valGen[i] === this.gen) return this.small(this.valSlot[i] * 4 + 3);
          if (this.nextValSlot < MAX_SLOTS) {
            const slot = this.nextValSlot++;
            this.valSlot[i] = slot;
            this.valGen[i] = this.gen;
            return this.define(slot, v);
          }
        } else {
          this.valStr[i] = v;
          this.valGen[i] = 0;
        }
      }
      return this.str(v);
    }
    this.value(v, 0);
  }

  value(v, depth) {
    this.ensure(9);
    const b = this.buf;
    if (typeof v === 'string') {
      b[this.pos++] = TAG_STRING;
      this.str(v);
    } else if (typeof v === 'number') {
      const p = this.pos;
      if ((v | 0) === v) {
        b[p] = TAG_INT;
        this.view.setInt32(p + 1, v, true);
        this.view.setInt32(p + 5, v >> 31, true);
        this.pos = p + 9;
      } else if (Number.isSafeInteger(v)) {
        b[p] = TAG_INT;
        this.view.setUint32(p + 1, v >>> 0, true);
        this.view.setInt32(p + 5, Math.floor(v / TWO32) | 0, true);
        this.pos = p + 9;
      } else {
        b[p] = TAG_DOUBLE;
        this.view.setFloat64(p + 1, v, true);
        this.pos = p + 9;
      }
    } else if (typeof v === 'boolean') {
      b[this.pos++] = v ? TAG_TRUE : TAG_FALSE;
    } else {
      this.rareValue(v, depth);
    }
  }

  rareValue(v, depth) {
    const b = this.buf;
    if (typeof v === 'bigint') {
      b[this.pos++] = TAG_INT;
      this.view.setBigInt64(this.pos, BigInt.asIntN(64, v), true);
      this.pos += 8;
    } else if (depth >= MAX_DEPTH) {
      b[this.pos++] = TAG_STRING;
      this.str('[nested too deep]');
    } else if (v instanceof Uint8Array) {
      b[this.pos++] = TAG_BYTES;
      this.varint(v.length);
      this.ensure(v.length);
      this.buf.set(v, this.pos);
      this.pos += v.length;
    } else if (Array.isArray(v)) {
      b[this.pos++] = TAG_ARRAY;
      this.varint(v.length);
      for (let i = 0; i < v.length; i++) this.value(v[i] == null ? '' : v[i], depth + 1);
    } else if (v !== null && typeof v === 'object') {
      b[this.pos++] = TAG_MAP;
      const keys = Object.keys(v).filter((k) => v[k] != null);
      this.varint(keys.length);
      for (const k of keys) {
        this.interned(k);
        this.value(v[k], depth + 1);
      }
    } else {
      b[this.pos++] = TAG_STRING;
      this.str(String(v));
    }
  }

  /**
   * One span record; its attributes are the first `s.na` entries of `s.attrs`. The common case
   * (cached name, keys and values, no events, links or drops) is written inline with the position
   * in a local; anything else goes through the general methods, after which the local state is
   * reloaded and room for the rest of the fixed-size parts ensured.
   */
  span(s) {
    const kv = s.attrs;
    const n = s.na;
    // Room for the fixed-size parts: ids, flags, kind, status, times, references (≤ 3 bytes each),
    // counts, and per attribute a key reference, a tag and up to 8 value bytes.
    this.ensure(80 + n * 7);
    const gen = this.gen;
    const bound = this.bound;
    let b = this.buf;
    let v = this.view; // big-endian id words: the ids' byte order
    let p = this.pos;
    v.setInt32(p, s.t0);
    v.setInt32(p + 4, s.t1);
    v.setInt32(p + 8, s.t2);
    v.setInt32(p + 12, s.t3);
    v.setInt32(p + 16, s.s0);
    v.setInt32(p + 20, s.s1);
    v.setInt32(p + 24, s.p0);
    v.setInt32(p + 28, s.p1);
    p = putSmall(b, p + 32, s.flags);
    b[p] = s.kind;
    b[p + 1] = s.statusCode;
    v.setFloat64(p + 2, s.start, true);
    v.setFloat64(p + 10, s.end_, true);
    p += 18;
    const name = s.name;
    if (name === this.nameStr && bound[this.nameSlot] === gen) {
      p = putSmall(b, p, this.nameSlot * 4 + 3);
    } else {
      this.pos = p;
      this.name(name);
      this.ensure(64 + n * 7);
      b = this.buf;
      v = this.view;
      p = this.pos;
    }
    const x = s.x; // events, links, drops and status message, when the span has any
    if (x === null && s.traceState === '') {
      b[p] = 0;
      b[p + 1] = 0;
      p += 2;
    } else {
      this.pos = p;
      this.str(s.traceState);
      this.str(x === null ? '' : x.statusMessage);
      this.ensure(64 + n * 7);
      b = this.buf;
      v = this.view;
      p = this.pos;
    }
    if (n < 1 << 22) p = putSmall(b, p, n >> 1);
    else {
      this.pos = p;
      this.varint(n >> 1);
      p = this.pos;
    }
    const keyStr = this.keyStr;
    const keySlot = this.keySlot;
    const valStr = this.valStr;
    const valGen = this.valGen;
    for (let i = 0; i < n; i += 2) {
      const j = i >> 1;
      const k = kv[i];
      let slot;
      if (j < POSITIONS && keyStr[j] === k && bound[(slot = keySlot[j])] === gen) {
        p = putSmall(b, p, slot * 4 + 3);
      } else {
        this.pos = p;
        this.key(k, j);
        this.ensure(16 + (n - i) * 7);
        b = this.buf;
        v = this.view;
        p = this.pos;
      }
      const val = kv[i + 1];
      if (typeof val === 'string') {
        if (j < POSITIONS && valStr[j] === val && valGen[j] === gen) {
          b[p] = TAG_STRING;
          p = putSmall(b, p + 1, this.valSlot[j] * 4 + 3);
          continue;
        }
      } else if (typeof val === 'number' && (val | 0) === val) {
        b[p] = TAG_INT;
        v.setInt32(p + 1, val, true);
        v.setInt32(p + 5, val >> 31, true);
        p += 9;
        continue;
      } else if (typeof val === 'boolean') {
        b[p++] = val ? TAG_TRUE : TAG_FALSE;
        continue;
      }
      this.pos = p;
      this.attrValue(val, j);
      this.ensure(16 + (n - i) * 7);
      b = this.buf;
      v = this.view;
      p = this.pos;
    }
    if (x === null) {
      // dropped attributes, events, dropped events, links, dropped links: all 0
      b[p] = 0;
      b[p + 1] = 0;
      b[p + 2] = 0;
      b[p + 3] = 0;
      b[p + 4] = 0;
      this.pos = p + 5;
      return;
    }
    this.pos = p;
    this.varint(x.droppedAttrs);
    this.eventsAndLinks(x);
  }

  /** A span name, through a one-entry cache (most spans of a buffer share a few names). */
  name(name) {
    if (name === this.nameStr) return this.slotted(name, this.nameSlot);
    const slot = this.slots.get(name);
    if (slot === undefined) {
      const fresh = this.newSlot(name);
      if (fresh !== undefined) {
        this.nameStr = name;
        this.nameSlot = fresh;
      }
      return;
    }
    this.nameStr = name;
    this.nameSlot = slot;
    this.slotted(name, slot);
  }

  eventsAndLinks(x) {
    const ev = x.events;
    if (ev) {
      this.varint(ev.length);
      for (const e of ev) {
        this.interned(e.name);
        this.ensure(8);
        this.f64(e.time);
        this.attrsNested(e.attrs);
        this.varint(e.dropped);
      }
    } else {
      this.varint(0);
    }
    this.varint(x.droppedEvents);
    const ln = x.links;
    if (ln) {
      this.varint(ln.length);
      for (const l of ln) {
        this.ensure(24);
        for (const w of [l.t0, l.t1, l.t2, l.t3, l.s0, l.s1]) this.u32be(w);
        this.varint(l.flags);
        this.str(l.traceState);
        this.attrsNested(l.attrs);
        this.varint(l.dropped);
      }
    } else {
      this.varint(0);
    }
    this.varint(x.droppedLinks);
  }

  /** Attribute lists of events and links (no positional key cache: it serves span attributes). */
  attrsNested(kv) {
    if (!kv) return this.varint(0);
    this.varint(kv.length >> 1);
    for (let i = 0; i < kv.length; i += 2) {
      this.interned(kv[i]);
      this.value(kv[i + 1], 0);
    }
  }
}
