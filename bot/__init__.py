"""bot: the Discord adapter around the morph engine."""
