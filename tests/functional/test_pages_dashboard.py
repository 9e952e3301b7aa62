"""The wallet page: first paint from the server, the top-up form's validation, and bookings that pay once."""
from __future__ import annotations

import html as html_lib
import re

import pytest

from balance.extensions import db
from tests.support import databases

HTML = {"Accept": "text/html,application/xhtml+xml"}
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class Wallet:
    """A browser on the wallet page, through the test client: it logs in with the form and sends the page's forms."""

    def __init__(self, client, auth, email: str = "ann@example.com"):
        self.client = client
        self.user_id, self.headers = auth.new_user(email)
        token = TOKEN.search(client.get("/login", headers=HTML).get_data(as_text=True)).group(1)
        client.post("/login", data={"email": email, "password": "password123", "csrf_token": token}, headers=HTML)
        self.page = ""
        self.open()

    def open(self, path: str = "/") -> str:
        reply = self.client.get(path, headers=HTML)
        assert reply.status_code == 200, reply.status_code
        self.page = reply.get_data(as_text=True)
        return self.page

    @property
    def csrf(self) -> str:
        return TOKEN.search(self.page).group(1)

    def key(self, form: str) -> str:
        """The Idempotency-Key rendered into a form (``topup`` or a room id)."""
        if form == "topup":
            part = self.page[self.page.index('id="topup-form"'):]
        else:
            part = self.page[self.page.index(f'name="room" value="{form}"'):]
        return re.search(r'name="idempotency_key" value="([^"]*)"', part).group(1)

    def post(self, path: str, **data):
        data.setdefault("csrf_token", self.csrf)
        return self.client.post(path, data=data, headers=HTML)

    def flashes(self) -> list[str]:
        return [html_lib.unescape(m) for m in re.findall(r'class="flash flash-\w+">([^<]*)<', self.open())]

    def transactions(self) -> list[dict]:
        return self.client.get("/transactions", headers=self.headers).get_json()["items"]

    def balance(self):
        return self.client.get("/balance", headers=self.headers).get_json()["balance"]


@pytest.fixture
def admin(auth):
    return auth.new_admin()[1]


def test_the_wallet_page_paints_the_balance_seq_rooms_and_history_from_the_server(client, auth, admin):
    wallet = Wallet(client, auth)
    auth.fund(wallet.headers, admin, 100.5)
    page = wallet.open()
    assert re.search(r'id="balance"[^>]*>\$100\.50<', page)
    assert 'data-balance-minor="10050" data-seq="1"' in page
    assert re.search(r'aria-live="polite"', page)
    garden = page[page.index("Garden Single"):page.index("Harbour Double")]
    loft = page[page.index("Loft Suite"):]
    assert "Within your balance." in garden and "disabled" not in garden.split("book-button")[1].split(">")[0]
    assert "You need $199.50 more." in loft and "disabled" in loft.split("book-button")[1].split(">")[0]
    assert "+$100.50" in page and "Approved" in page
    assert '<script src="/assets/socket.io.min.js" defer></script>' in page
    assert 'data-transports="polling,websocket"' in page


@pytest.fixture
def euro_app(database_uri):
    app = databases.make_app(database_uri, CURRENCY="EUR")
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_money_is_shown_in_the_configured_currency(euro_app, auth):
    client = euro_app.test_client()
    wallet = Wallet(client, type(auth)(client))
    assert re.search(r'id="balance"[^>]*>€0\.00<', wallet.page)
    assert "€45.00 per night" in wallet.page and 'data-currency="EUR" data-currency-symbol="€"' in wallet.page


NOT_A_NUMBER = "Must be a number in digits 0-9, like 1250 or 1,250.50."


@pytest.mark.parametrize(("amount", "message"), [
    pytest.param("", "Enter an amount.", id="nothing typed"),
    pytest.param("abc", NOT_A_NUMBER, id="words"),
    pytest.param("0", "Must be greater than zero.", id="zero"),
    pytest.param("-5", "Must be greater than zero.", id="negative"),
    pytest.param("1.234", "At most 2 decimals.", id="more decimals than the currency has"),
    pytest.param("1.500", "At most 2 decimals.", id="three decimals, as a European thousand is written"),
    pytest.param("NaN", NOT_A_NUMBER, id="not a number spelt out"),
    pytest.param("1e3", NOT_A_NUMBER, id="exponent notation, which the JSON API alone accepts"),
    pytest.param("2000000", "Must not exceed 1000000.00.", id="above the transaction limit"),
    pytest.param("1,,0,0", NOT_A_NUMBER, id="separators doubled and between single digits"),
    pytest.param("10,00", NOT_A_NUMBER, id="a decimal comma"),
    pytest.param(",5", NOT_A_NUMBER, id="a separator before any digit"),
    pytest.param("1,0", NOT_A_NUMBER, id="a group of one digit after a separator"),
    pytest.param("1,0000", NOT_A_NUMBER, id="a group of four digits after a separator"),
    pytest.param("1000,000", NOT_A_NUMBER, id="four digits before a separator"),
    pytest.param("0,100", NOT_A_NUMBER, id="a grouped number that starts with zero"),
    pytest.param("1,000.", NOT_A_NUMBER, id="a decimal point without decimals"),
    pytest.param("1.2.3", NOT_A_NUMBER, id="two decimal points"),
    pytest.param("１２", NOT_A_NUMBER, id="full-width digits"),
    pytest.param("١٢", NOT_A_NUMBER, id="Arabic-Indic digits"),
])
def test_a_bad_top_up_amount_is_explained_and_the_input_kept(client, auth, amount, message):
    wallet = Wallet(client, auth)
    reply = wallet.post("/topup", amount=amount, description="For the <trip>", idempotency_key=wallet.key("topup"))
    page = reply.get_data(as_text=True)
    assert reply.status_code == 422
    assert f'<p class="field-error" id="topup-amount-error">{message}</p>' in page
    assert f'value="{amount}"' in page and 'value="For the &lt;trip&gt;"' in page
    assert 'aria-invalid="true" aria-describedby="topup-amount-error"' in page
    assert wallet.transactions() == []


@pytest.mark.parametrize(("amount", "requested"), [
    ("1,000.50", 1000.5),
    ("1000.5", 1000.5),
    ("999,999.99", 999999.99),
    ("1,000,000", 1000000),
    (" 0.01 ", 0.01),
    ("007", 7),
])
def test_a_top_up_amount_in_plain_digits_with_or_without_thousands_separators_is_requested_exactly(
        client, auth, amount, requested):
    wallet = Wallet(client, auth)
    reply = wallet.post("/topup", amount=amount, idempotency_key=wallet.key("topup"))
    assert reply.status_code == 303
    assert [t["amount"] for t in wallet.transactions()] == [requested]


def test_a_too_long_top_up_note_is_explained(client, auth):
    wallet = Wallet(client, auth)
    reply = wallet.post("/topup", amount="5", description="x" * 501)
    assert reply.status_code == 422
    assert "Use at most 500 characters." in reply.get_data(as_text=True)


def test_a_top_up_request_is_pending_and_the_form_sent_twice_asks_once(client, auth):
    wallet = Wallet(client, auth)
    key = wallet.key("topup")
    for _ in range(2):
        reply = wallet.post("/topup", amount="1,250.50", description="Holiday", idempotency_key=key)
        assert (reply.status_code, reply.headers["Location"]) == (303, "/")
    assert [(t["amount"], t["status"], t["description"]) for t in wallet.transactions()] == [
        (1250.5, "pending", "Holiday")]
    assert "Top-up of $1,250.50 requested. An admin will review it." in wallet.flashes()


def test_a_top_up_form_sent_again_with_other_values_is_refused_with_a_fresh_form(client, auth):
    wallet = Wallet(client, auth)
    key = wallet.key("topup")
    wallet.post("/topup", amount="10", idempotency_key=key)
    reply = wallet.post("/topup", amount="20", idempotency_key=key)
    page = reply.get_data(as_text=True)
    assert reply.status_code == 422
    assert "This form was already sent with other values" in page
    assert f'value="{key}"' not in page
    assert len(wallet.transactions()) == 1


@pytest.mark.parametrize("key", [
    pytest.param("k" * 1000, id="1,000 characters"),
    pytest.param("k" * 256, id="one character too long"),
    pytest.param("   ", id="only spaces"),
    pytest.param("bad\x07key", id="a control character"),
])
def test_a_top_up_form_with_a_bad_key_says_so_and_comes_back_with_a_fresh_key_that_sends(client, auth, key):
    wallet = Wallet(client, auth)
    reply = wallet.post("/topup", amount="5", description="Lunch", idempotency_key=key)
    wallet.page = reply.get_data(as_text=True)
    assert reply.status_code == 422
    assert ('<p class="form-error" role="alert">Top-up not requested: '
            'Idempotency-Key must be 1 to 255 printable ASCII characters.</p>') in wallet.page
    assert 'value="5"' in wallet.page and 'value="Lunch"' in wallet.page
    fresh = wallet.key("topup")
    assert fresh.strip() and fresh != html_lib.escape(key)
    assert wallet.transactions() == []
    assert wallet.post("/topup", amount="5", description="Lunch", idempotency_key=fresh).status_code == 303
    assert [(t["amount"], t["status"]) for t in wallet.transactions()] == [(5, "pending")]


@pytest.mark.parametrize("path", ["/topup", "/book"])
@pytest.mark.parametrize("token", [None, "", "forged"])
def test_a_wallet_form_without_its_csrf_token_changes_nothing(client, auth, admin, path, token):
    wallet = Wallet(client, auth)
    auth.fund(wallet.headers, admin, 500)
    data = {"amount": "5", "room": "garden-single", "idempotency_key": "k-1"}
    if token is not None:
        data["csrf_token"] = token
    reply = client.post(path, data=data, headers=HTML)
    assert reply.status_code == 400
    assert "This form has expired or did not come from this site" in reply.get_data(as_text=True)
    assert len(wallet.transactions()) == 1 and wallet.balance() == 500


def test_booking_pays_the_catalogue_price_once_however_often_the_form_is_sent(client, auth, admin):
    wallet = Wallet(client, auth)
    auth.fund(wallet.headers, admin, 300)
    key = wallet.key("harbour-double")
    for _ in range(3):
        reply = wallet.post("/book", room="harbour-double", idempotency_key=key, amount="0.01")
        assert (reply.status_code, reply.headers["Location"]) == (303, "/")
    payments = [t for t in wallet.transactions() if t["type"] == "payment"]
    assert [(p["amount"], p["status"], p["reference"], p["description"]) for p in payments] == [
        (240, "success", "room:harbour-double", "Harbour Double · 3 nights")]
    assert wallet.balance() == 60
    flashes = wallet.flashes()
    assert flashes[0] == "Booked Harbour Double · 3 nights: paid $240.00. Balance: $60.00."
    assert flashes[1:] == [flashes[0] + " (You had already booked this; you were charged once.)"] * 2


def test_each_rendered_booking_form_is_a_new_booking(client, auth, admin):
    wallet = Wallet(client, auth)
    auth.fund(wallet.headers, admin, 200)
    wallet.post("/book", room="garden-single", idempotency_key=wallet.key("garden-single"))
    wallet.open()
    wallet.post("/book", room="garden-single", idempotency_key=wallet.key("garden-single"))
    assert wallet.balance() == 20


def test_a_booking_short_of_money_is_refused_and_says_how_much_more_is_needed(client, auth, admin):
    wallet = Wallet(client, auth)
    auth.fund(wallet.headers, admin, 100)
    wallet.post("/book", room="loft-suite", idempotency_key=wallet.key("loft-suite"))
    assert wallet.flashes() == ["Not booked: Loft Suite costs $300.00 and your balance is $100.00. "
                                "You need $200.00 more."]
    assert wallet.balance() == 100
    assert [(t["type"], t["status"], t["failure_reason"]) for t in wallet.transactions()][0] == (
        "payment", "failed", "insufficient_balance")


def test_a_booking_form_without_its_key_or_with_the_key_of_another_room_books_nothing(client, auth, admin):
    wallet = Wallet(client, auth)
    auth.fund(wallet.headers, admin, 500)
    wallet.post("/book", room="garden-single")
    assert wallet.flashes() == ["Not booked: this booking form has no key; reload the page and try again."]
    key = wallet.key("garden-single")
    wallet.post("/book", room="garden-single", idempotency_key=key)
    wallet.post("/book", room="loft-suite", idempotency_key=key)
    assert wallet.flashes()[-1].startswith("Not booked: this Idempotency-Key was already used for a different request")
    assert wallet.balance() == 410


def test_booking_an_unknown_room_is_the_404_page(client, auth):
    wallet = Wallet(client, auth)
    reply = wallet.post("/book", room="penthouse", idempotency_key="k-2")
    assert reply.status_code == 404 and "no such room" in reply.get_data(as_text=True)


def test_the_history_is_paged_newest_first(client, auth, admin):
    wallet = Wallet(client, auth)
    for amount in range(1, 13):
        client.post("/transactions/topup", json={"amount": amount}, headers=wallet.headers)
    first = wallet.open()
    assert first.count('<tr class="tx is-pending"') == 10
    assert first.index("+$12.00") < first.index("+$11.00")
    older = re.search(r'href="\?cursor=([^"]+)"[^>]*data-older', first).group(1)
    second = wallet.open("/?cursor=" + older)
    assert second.count('<tr class="tx is-pending"') == 2 and "+$2.00" in second and "+$1.00" in second
    assert 'data-first-page="false"' in second and "Newest" in second
    bad = client.get("/?cursor=nonsense", headers=HTML)
    assert bad.status_code == 400 and "cursor is not valid" in bad.get_data(as_text=True)


@pytest.fixture
def websocket_only_app(database_uri):
    app = databases.make_app(database_uri, SOCKETIO_TRANSPORTS="websocket")
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_websocket_only_server_gets_websocket_only_pages(auth, websocket_only_app):
    client = websocket_only_app.test_client()
    assert 'data-transports="websocket"' in Wallet(client, type(auth)(client)).page


def test_the_socket_io_client_is_served_from_our_own_origin(client):
    with client.get("/assets/socket.io.min.js") as reply:
        assert reply.status_code == 200 and reply.mimetype == "text/javascript"
        assert b"Socket.IO v4.8.4" in reply.data[:200]          # the version package.json pins
    assert client.get("/assets/other.js").status_code == 404
