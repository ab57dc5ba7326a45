"""The fake's REST handlers, one module per area; :mod:`bot.sandbox.rest` holds the route table."""
