from bot.main import cli

cli()
