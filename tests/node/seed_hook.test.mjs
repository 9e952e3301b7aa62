// The seed's `useBalance` hook without React: the same import, `io()` options and event names, against a
// running Balance server. Run by tests/e2e/test_seed_hook.py, which starts the server and passes:
//   BALANCE_URL     the server, e.g. http://127.0.0.1:5000
//   USER_EMAIL, USER_PASSWORD   a user with no pending top-ups; ADMIN_TOKEN   an admin's access token
//   SERVER_SHAPE    "single": one process, both transports; "workers": several workers, websocket only
// Run by hand: BALANCE_URL=... USER_EMAIL=... USER_PASSWORD=... ADMIN_TOKEN=... node --test tests/node/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import io from 'socket.io-client';

const { BALANCE_URL, USER_EMAIL, USER_PASSWORD, ADMIN_TOKEN, SERVER_SHAPE } = process.env;
for (const [name, value] of Object.entries({ BALANCE_URL, USER_EMAIL, USER_PASSWORD, ADMIN_TOKEN, SERVER_SHAPE })) {
  if (!value) throw new Error(`${name} is not set`);
}
const WAIT_MS = 10000;
const HOOK_EVENTS = ['connect', 'disconnect', 'connect_error', 'balance_initial', 'balance_updated',
  'transaction_completed', 'transaction_failed', 'balance_insufficient', 'error'];

async function api(method, path, token, body) {
  const res = await fetch(BALANCE_URL + path, {
    method,
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path} answered ${res.status}: ${JSON.stringify(json)}`);
  return json;
}

// Exactly the hook's call; `transports` is the one option a multi-worker deployment adds.
function hookSocket(token, extra = {}) {
  return io(`${BALANCE_URL}/balance`, {
    auth: { token },
    reconnection: true,
    reconnectionAttempts: 5,
    reconnectionDelay: 1000,
    ...extra,
  });
}

// What the hook's handlers would have done, plus the order of everything received.
function watch(socket) {
  const state = { balance: null, connected: false, loading: true, events: [], firstTransport: null };
  socket.io.on('open', () => { state.firstTransport = state.firstTransport ?? socket.io.engine.transport.name; });
  socket.on('connect', () => { state.connected = true; });
  socket.on('disconnect', () => { state.connected = false; });
  socket.on('balance_initial', (data) => { state.balance = data.balance; state.loading = false; });
  socket.on('balance_updated', (data) => { state.balance = data.newBalance; });
  for (const name of HOOK_EVENTS) socket.on(name, (data) => state.events.push([name, data]));
  return state;
}

async function until(condition, what, state) {
  const deadline = Date.now() + WAIT_MS;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`${what} not seen within ${WAIT_MS} ms; events: ${JSON.stringify(state?.events)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const count = (state, name) => state.events.filter(([n]) => n === name).length;
const last = (state, name) => state.events.filter(([n]) => n === name).at(-1)?.[1];

async function seesInitialThenTheApprovedTopUp(extra, expectedFirstTransport) {
  const { access_token: token } = await api('POST', '/auth/login', null, { email: USER_EMAIL, password: USER_PASSWORD });
  const before = await api('GET', '/balance', token);
  const socket = hookSocket(token, extra);
  const state = watch(socket);
  try {
    await until(() => count(state, 'balance_initial') === 1, 'balance_initial', state);
    assert.deepEqual(state.events.map(([n]) => n), ['connect', 'balance_initial']);
    assert.deepEqual(last(state, 'balance_initial'), { balance: before.balance, seq: before.seq });
    assert.equal(state.firstTransport, expectedFirstTransport);
    assert.equal(state.loading, false);

    const pending = await api('POST', '/transactions/topup', token, { amount: 25.5, description: 'Test topup' });
    await api('PATCH', `/transactions/topup/${pending.id}/process`, ADMIN_TOKEN,
      { status: 'success', admin_notes: 'Approved for testing' });
    await until(() => count(state, 'transaction_completed') === 1, 'the approval', state);

    const updated = last(state, 'balance_updated');
    assert.equal(count(state, 'balance_updated'), 1);
    assert.deepEqual({ ...updated, timestamp: undefined }, {
      newBalance: before.balance + 25.5, previousBalance: before.balance, transactionId: pending.id,
      transactionType: 'topup', amount: 25.5, seq: before.seq + 1, timestamp: undefined,
    });
    assert.ok(!Number.isNaN(Date.parse(updated.timestamp)), `timestamp ${updated.timestamp}`);
    assert.equal(state.balance, before.balance + 25.5, "the hook's balance follows the update");
    assert.equal(last(state, 'transaction_completed').status, 'success');

    // refreshBalance(): a bare emit, answered with balance_initial; with an ack the snapshot comes back too
    socket.emit('get_current_balance');
    await until(() => count(state, 'balance_initial') === 2, 'refreshBalance', state);
    assert.deepEqual(last(state, 'balance_initial'), { balance: before.balance + 25.5, seq: before.seq + 1 });
    const ack = await socket.timeout(WAIT_MS).emitWithAck('get_current_balance', { since_seq: before.seq + 1 });
    assert.deepEqual(ack, { balance: before.balance + 25.5, seq: before.seq + 1 });
    assert.equal(count(state, 'error'), 0);
    await until(() => socket.io.engine.transport.name === 'websocket', 'the transport on websocket', state);
  } finally {
    socket.close();
  }
}

if (SERVER_SHAPE === 'single') {
  test('the hook unchanged (polling first) sees balance_initial, then balance_updated after an approval', async () => {
    await seesInitialThenTheApprovedTopUp({}, 'polling');
  });
}

test('the hook with transports: [websocket] sees balance_initial, then balance_updated after an approval', async () => {
  await seesInitialThenTheApprovedTopUp({ transports: ['websocket'] }, 'websocket');
});

test('a bad token gets connect_error with the reason, and the hook does not retry a refusal', async () => {
  const socket = hookSocket('not-a-token', SERVER_SHAPE === 'single' ? {} : { transports: ['websocket'] });
  const state = watch(socket);
  try {
    await until(() => count(state, 'connect_error') === 1, 'connect_error', state);
    assert.match(last(state, 'connect_error').message, /^unauthorized/);
    assert.equal(socket.active, false, 'a refusal by the server is final: no reconnection loop');
    assert.equal(count(state, 'balance_initial'), 0);
  } finally {
    socket.close();
  }
});

if (SERVER_SHAPE === 'workers') {
  test('the hook unchanged is refused by a multi-worker server, which does not serve long-polling', async () => {
    const { access_token: token } = await api('POST', '/auth/login', null, { email: USER_EMAIL, password: USER_PASSWORD });
    const socket = hookSocket(token);
    const state = watch(socket);
    try {
      await until(() => count(state, 'connect_error') === 1, 'connect_error', state);
      assert.equal(state.connected, false);
    } finally {
      socket.close();
    }
  });
}
