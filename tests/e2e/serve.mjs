// A small static file server for www/ (or any directory), bound to 127.0.0.1.
//
//   node tests/e2e/serve.mjs [--port 8080] [--root www] [--isolated]     serve until Ctrl-C
//   import { serve } from './serve.mjs'; const s = await serve({ root, port: 0 }); ... await s.close();
//
// `mounts` maps URL prefixes to other directories, e.g. {'/models/fixtures/': 'tests/fixtures'}.
// `isolated` sends COOP and COEP headers, which make the page cross-origin isolated (shared memory, so
// the threaded engine), as tools/serve.py does for ./build.sh serve.
//
// GET and HEAD only; correct MIME types (application/wasm for streaming compilation, text/javascript
// for ES modules); no directory listings; paths cannot escape the root; no caching headers, so a
// rebuilt www/pkg is picked up on reload.

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.npy': 'application/octet-stream',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.bmp': 'image/bmp',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/plain; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
};

/**
 * Starts serving `root` (and `mounts`: URL prefix → directory; `files`: URL path → file). `port: 0` picks
 * a free port.
 * @returns {Promise<{url: string, port: number, close: () => Promise<void>, log: string[]}>}
 */
export function serve({ root, mounts = {}, files = {}, port = 0, host = '127.0.0.1', quiet = true, isolated = false } = {}) {
  const isolation = isolated
    ? { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' }
    : {};
  const dirs = Object.entries(mounts)
    .map(([prefix, dir]) => [prefix.endsWith('/') ? prefix : `${prefix}/`, path.resolve(dir)])
    .concat([['/', path.resolve(root)]]);
  const log = [];
  const server = http.createServer((req, res) => {
    const send = (status, body, headers = {}) => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...isolation, ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n', { allow: 'GET, HEAD' });
    let rel;
    try {
      rel = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    } catch {
      return send(400, 'bad request\n');
    }
    if (rel.endsWith('/')) rel += 'index.html';
    const [prefix, base] = dirs.find(([p]) => rel.startsWith(p));
    const file = files[rel] ?? path.join(base, path.normalize(rel.slice(prefix.length - 1)));
    if (!files[rel] && file !== base && !file.startsWith(base + path.sep)) return send(403, 'forbidden\n');
    fs.stat(file, (err, st) => {
      const status = err || !st.isFile() ? 404 : 200;
      log.push(`${req.method} ${req.url} ${status}`);
      if (!quiet) console.log(`${req.method} ${req.url} ${status}`);
      if (status === 404) return send(404, 'not found\n');
      res.writeHead(200, {
        'content-type': MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
        'content-length': st.size,
        'cache-control': 'no-cache',
        'x-content-type-options': 'nosniff',
        ...isolation,
      });
      if (req.method === 'HEAD') return res.end();
      fs.createReadStream(file).pipe(res);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const actual = server.address().port;
      resolve({
        url: `http://${host}:${actual}/`,
        port: actual,
        log,
        close: () =>
          new Promise((done) => {
            server.closeAllConnections?.();
            server.close(() => done());
          }),
      });
    });
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : dflt;
  };
  const here = path.dirname(fileURLToPath(import.meta.url));
  const root = opt('root', path.join(here, '..', '..', 'www'));
  const s = await serve({ root, port: Number(opt('port', 8080)), quiet: false, isolated: args.includes('--isolated') });
  console.log(`serving ${path.resolve(root)} on ${s.url} (Ctrl-C to stop)`);
}
