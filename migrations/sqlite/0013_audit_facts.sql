-- An audit entry's detail is its facts as JSON (bot.store.base.audit: a job, its author, a count…), which
-- each front words in the admin's language, instead of an English line with Discord mentions written by the
-- store. Entries written before keep their line as {"text": …}, shown as written (they are pruned with the
-- old jobs).
UPDATE audit_log SET detail = CASE WHEN detail = '' THEN '{}' ELSE json_object('text', detail) END;
