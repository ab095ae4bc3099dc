-- Each saga row carries its steps' routes (step -> the variant its first request went to and
-- when its latest request went), read and written with the saga's state: a message costs the
-- saga's one read and one write instead of also a read of `saga_routes` per answer and a read
-- and an upsert per request.
ALTER TABLE sagas ADD COLUMN routes TEXT NOT NULL DEFAULT '{}';
UPDATE sagas SET routes = r.routes
FROM (
    SELECT saga_id,
           CAST(json_object_agg(step, json_build_object('variant', variant, 'sentAtMs', sent_at_ms)) AS text) AS routes
    FROM saga_routes
    GROUP BY saga_id
) r
WHERE sagas.id = r.saga_id;
DROP TABLE saga_routes;
