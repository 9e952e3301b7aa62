"""Use cases. Each owns its database transaction and returns finished results; events go to the outbox."""
