"""One cog per feature: ``morph`` (/morph, /morph-cancel, /morph-queue, reactions), ``images`` (/morph-images)
and ``admin`` (/morphadmin); ``options`` holds the options they share."""
from bot.cogs.admin import AdminCog
from bot.cogs.images import ImagesCog
from bot.cogs.morph import MorphCog

__all__ = ["AdminCog", "ImagesCog", "MorphCog"]
