// A self-signed certificate made per run with the openssl CLI (for 127.0.0.1 and localhost).
import { execFileSync } from 'node:child_process';
import path from 'node:path';

/** Writes cert.pem / key.pem into `dir`; returns their paths. */
export function makeSelfSignedCert(dir) {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  return { cert, key };
}
