// The benchmark's socket receiver in Node, with the npm socket.io-client the pages and the seed's hook use.
//
//   node bench/receiver.mjs SPEC.json OUT.json
//
// Same contract as `python bench/loadgen.py receive` (run.py picks one with --receiver): connects every
// socket of the spec's users to /balance over websocket, prints `READY <connected> <failed>` once each has
// its balance_initial, records every balance_updated / transaction_completed arrival, and on `STOP` (stdin)
// disconnects, writes OUT.json and prints `DONE`.
//
// Arrival times are process.hrtime (CLOCK_MONOTONIC on Linux), the clock Python's time.monotonic() reads,
// so they subtract from the driver's send times. One Node process parses a socket.io frame in a few
// microseconds, where a Python AsyncClient takes a hundred or more: with 1,000 sockets in one process the
// Python receiver's own queue was part of the latency it reported.
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import io from 'socket.io-client';

const [specPath, outPath] = process.argv.slice(2);
const spec = JSON.parse(readFileSync(specPath, 'utf8'));
const now = () => Number(process.hrtime.bigint()) / 1e9;

const received = [];   // [transactionId, socket, t, seq]
const completed = [];  // [transactionId, socket, t]
const other = {};
const initial = {};    // socket -> seq of its balance_initial
const failed = [];
const disconnects = [];
const clients = [];
const expected = spec.users.reduce((n, u) => n + u.sockets.length, 0);
let greeted = 0;
let onGreeted = () => {};

function open(sock, token) {
  return new Promise((resolve) => {
    const client = io(`${spec.url}/balance`, {
      transports: ['websocket'], auth: { token }, reconnection: false, forceNew: true, timeout: 30000,
    });
    client.on('balance_updated', (d) => received.push([d.transactionId, sock, now(), d.seq]));
    client.on('transaction_completed', (d) => completed.push([d.transactionId, sock, now()]));
    client.on('balance_initial', (d) => {
      if (!(sock in initial)) {
        initial[sock] = d.seq;
        greeted += 1;
        if (greeted >= expected) onGreeted();
      }
    });
    for (const name of ['transaction_failed', 'balance_insufficient', 'error']) {
      client.on(name, () => { other[name] = (other[name] || 0) + 1; });
    }
    client.on('disconnect', (reason) => disconnects.push([sock, now(), String(reason)]));
    client.on('connect', () => { clients.push(client); resolve(); });
    client.on('connect_error', (err) => { failed.push([sock, String(err && err.message)]); client.close(); resolve(); });
  });
}

async function connectAll() {
  const queue = spec.users.flatMap((u) => u.sockets.map((sock) => [sock, u.token]));
  const width = spec.connect_concurrency || 50;
  const lanes = Array.from({ length: width }, async () => {
    for (let item = queue.shift(); item; item = queue.shift()) await open(...item);
  });
  await Promise.all(lanes);
}

const t0 = now();
await connectAll();
if (greeted < expected - failed.length) {
  await Promise.race([new Promise((r) => { onGreeted = r; }), new Promise((r) => setTimeout(r, 30000))]);
}
const connectSeconds = now() - t0;
process.stdout.write(`READY ${clients.length} ${failed.length}\n`);

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line.trim() === 'STOP') break;
}
const stoppedAt = now();
for (const client of clients) client.close();
writeFileSync(outPath, JSON.stringify({
  received, completed, other, initial, failed, connect_seconds: connectSeconds,
  disconnects: disconnects.filter((d) => d[1] < stoppedAt), gc_pauses: [],
}));
process.stdout.write('DONE\n');
process.exit(0);
