// Browser scenarios over wss:// to nginx (docs/deploy/nginx.conf), which forwards to the broker's ws listener.
import { describeTransport } from './lib/scenarios.mjs';

describeTransport('nginx');
