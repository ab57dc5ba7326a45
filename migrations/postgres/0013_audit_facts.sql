-- As migrations/sqlite/0013_audit_facts.sql.
UPDATE audit_log SET detail = CASE WHEN detail = '' THEN '{}' ELSE jsonb_build_object('text', detail)::text END;
