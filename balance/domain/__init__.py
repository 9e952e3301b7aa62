"""The pure core: money, ledger rules, events and errors. Imports no framework."""
