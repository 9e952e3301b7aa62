"""The JSON HTTP API: thin views that parse, call one service, and answer."""
