// Pure: a ZIP archive of stored (uncompressed) files, for "Download all" of the photo queue. The
// files are PNGs (already deflated) and a small CSV, so compressing them again would gain nothing;
// storing keeps the writer to the format's three records (PKWARE APPNOTE 6.3: local file header,
// central directory header, end of central directory). Names are UTF-8 (general purpose flag bit 11).

import { crc32 } from './crc32.js';

/** MS-DOS time and date words of a JavaScript Date (local time, two-second resolution, from 1980). */
function dosTime(date) {
  const year = Math.max(1980, date.getFullYear());
  return {
    time: (date.getHours() << 11) | (date.getMinutes() << 5) | (date.getSeconds() >> 1),
    day: ((year - 1980) << 9) | ((date.getMonth() + 1) << 5) | date.getDate(),
  };
}

const STORE = 0;
const UTF8 = 1 << 11;
const VERSION = 20; // 2.0: what a stored file in a folder-less archive needs

/** The fields shared by a file's local header (from offset 4) and its central directory entry. */
function common(view, at, f, when) {
  view.setUint16(at, VERSION, true);
  view.setUint16(at + 2, UTF8, true);
  view.setUint16(at + 4, STORE, true);
  view.setUint16(at + 6, when.time, true);
  view.setUint16(at + 8, when.day, true);
  view.setUint32(at + 10, f.crc, true);
  view.setUint32(at + 14, f.data.length, true); // compressed size: stored, the same
  view.setUint32(at + 18, f.data.length, true);
  view.setUint16(at + 22, f.name.length, true);
  view.setUint16(at + 24, 0, true); // no extra field
}

/**
 * A ZIP archive of `files` ([{name, data: Uint8Array or string}], strings as UTF-8), every one
 * stored, dated `date`. Returns its bytes. Archives over 4 GiB (ZIP64) are refused.
 */
export function zip(files, date = new Date()) {
  const enc = new TextEncoder();
  const when = dosTime(date);
  const entries = files.map((f) => {
    const data = typeof f.data === 'string' ? enc.encode(f.data) : f.data;
    return { name: enc.encode(f.name), data, crc: crc32(data), offset: 0 };
  });
  const local = entries.reduce((s, e) => s + 30 + e.name.length + e.data.length, 0);
  const central = entries.reduce((s, e) => s + 46 + e.name.length, 0);
  if (local + central + 22 > 0xffffffff || entries.length > 0xffff) throw new Error('the archive would be over 4 GiB or 65535 files');
  const out = new Uint8Array(local + central + 22);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const e of entries) {
    e.offset = at;
    view.setUint32(at, 0x04034b50, true);
    common(view, at + 4, e, when);
    out.set(e.name, at + 30);
    out.set(e.data, at + 30 + e.name.length);
    at += 30 + e.name.length + e.data.length;
  }
  for (const e of entries) {
    view.setUint32(at, 0x02014b50, true);
    view.setUint16(at + 4, VERSION, true); // made by: MS-DOS attributes, version 2.0
    common(view, at + 6, e, when);
    // comment length, disk number, internal and external attributes stay 0
    view.setUint32(at + 42, e.offset, true);
    out.set(e.name, at + 46);
    at += 46 + e.name.length;
  }
  view.setUint32(at, 0x06054b50, true);
  view.setUint16(at + 8, entries.length, true);
  view.setUint16(at + 10, entries.length, true);
  view.setUint32(at + 12, central, true);
  view.setUint32(at + 16, local, true);
  return out;
}
