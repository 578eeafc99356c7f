-- Issue 17: the end of the partition migration 10 made of the table it converted
-- (delivery_attempts_legacy, from MINVALUE), or NULL when there is none (a database migrated from
-- empty, or retention dropped it). Deleting a delivery or a webhook, and listing one delivery's
-- attempts, bound their reads by it (store::deliveries::attempts_since).
--
-- postmand_attempt_partitions() answers the same, but pg_get_expr opens (and locks) each table
-- whose bound it prints, so it read every partition: 7.5 ms at 373 partitions (a year with
-- retention off), and a wait behind any partition being created or dropped. This reads only the
-- legacy one's. The bound is printed and read back in UTC and ISO style, whatever the session's
-- TimeZone and DateStyle: under DateStyle 'Postgres', a zone abbreviation such as IST or CST
-- reads back as another zone's, and SST does not read back at all.
CREATE OR REPLACE FUNCTION postmand_attempt_legacy_end()
RETURNS timestamptz
LANGUAGE sql STABLE SET timezone = 'UTC' SET datestyle = 'ISO, YMD' AS $$
    SELECT trim(both '''' from
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \((.+)\)'))[1])::timestamptz
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'delivery_attempts'::regclass
      AND c.relname = 'delivery_attempts_legacy'
$$;
