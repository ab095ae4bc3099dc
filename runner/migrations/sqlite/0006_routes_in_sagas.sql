-- Each saga row carries its steps' routes (step -> the variant its first request went to and
-- when its latest request went), read and written with the saga's state: a message costs the
-- saga's one read and one write instead of also a read of `saga_routes` per answer and a read
-- and an upsert per request.
ALTER TABLE sagas ADD COLUMN routes TEXT NOT NULL DEFAULT '{}';
UPDATE sagas SET routes = (
    SELECT json_group_object(step, json_object('variant', variant, 'sentAtMs', sent_at_ms))
    FROM saga_routes
    WHERE saga_routes.saga_id = sagas.id
)
WHERE id IN (SELECT saga_id FROM saga_routes);
DROP TABLE saga_routes;
