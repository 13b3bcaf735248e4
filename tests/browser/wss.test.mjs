// Browser scenarios over wss:// to the broker's own TLS WebSocket listener.
import { describeTransport } from './lib/scenarios.mjs';

describeTransport('wss');
