// Browser scenarios over ws:// to the broker's WebSocket listener.
import { describeTransport } from './lib/scenarios.mjs';

describeTransport('ws');
