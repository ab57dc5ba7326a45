-- MP4 alongside GIF, and 🔍 refine replies.

-- What the job's animation is encoded as: 'mp4', 'gif' or 'both' (NULL: a job from before 0004, a GIF).
ALTER TABLE jobs ADD COLUMN output_format TEXT;
-- A 🔍 refine: the job whose two neighbouring frames it fills in, and the result message its own result
-- replies to (the message the refine menu was used on).
ALTER TABLE jobs ADD COLUMN parent_id INTEGER;
ALTER TABLE jobs ADD COLUMN reply_to_message_id INTEGER;

-- A server's default format for /morph (NULL: the bot's MORPH_FORMAT).
ALTER TABLE guild_settings ADD COLUMN default_format TEXT;
