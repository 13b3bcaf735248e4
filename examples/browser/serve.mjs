// A tiny static server for the example page: index.html, app.js and mqtt.js's browser build
// straight from node_modules (no bundler, no CDN). Only node's own modules are used.
//
//   node serve.mjs                 # http://127.0.0.1:8080/
//   PORT=9000 HOST=0.0.0.0 node serve.mjs
//
// The end-to-end tests (tests/browser) import startServer() to serve this same page, plus pages of
// their own, to real Chromium.
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/** URL path -> file served. Nothing else on disk is reachable. */
export const DEFAULT_ROUTES = {
  '/': path.join(HERE, 'index.html'),
  '/index.html': path.join(HERE, 'index.html'),
  '/app.js': path.join(HERE, 'app.js'),
  '/vendor/mqtt.esm.js': path.join(HERE, 'node_modules', 'mqtt', 'dist', 'mqtt.esm.js'),
};

/**
 * Starts the server and resolves to the listening http.Server.
 * @param {{port?: number, host?: string, routes?: Record<string, string>}} [options]
 *   port 0 picks a free port (read it from server.address().port); routes are added to the defaults.
 */
export function startServer({ port = 8080, host = '127.0.0.1', routes = {} } = {}) {
  const table = { ...DEFAULT_ROUTES, ...routes };
  const server = http.createServer(async (req, res) => {
    const urlPath = new URL(req.url ?? '/', 'http://x').pathname;
    const file = Object.hasOwn(table, urlPath) ? table[urlPath] : undefined;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    if (!file) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, {
        'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream',
        'Cache-Control': 'no-store',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch (err) {
      const hint = file.includes('node_modules') ? ' (run `npm ci` in examples/browser)' : '';
      res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`cannot read ${urlPath}${hint}\n`);
      console.error(`serve: ${file}: ${err.message}${hint}`);
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const port = Number(process.env.PORT ?? 8080);
  const host = process.env.HOST ?? '127.0.0.1';
  const server = await startServer({ port, host });
  const { port: bound } = server.address();
  console.log(`FerryMQ browser example: http://${host === '0.0.0.0' ? 'localhost' : host}:${bound}/`);
}
