"""The fake's REST handlers, one module per area; :mod:`fakediscord.rest` holds the route table."""
