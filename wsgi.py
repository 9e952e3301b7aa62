"""Production entrypoint for gunicorn's gevent worker. gevent is patched before anything else is imported."""
from gevent import monkey

monkey.patch_all()

from balance import create_app  # noqa: E402

app = create_app()

from balance.realtime import start_background_services  # noqa: E402
from balance.startup_checks import refuse_another_currency  # noqa: E402

refuse_another_currency(app)
start_background_services(app)
