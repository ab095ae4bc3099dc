-- gameday-svc: every game-day run, live and finished; `record` is the run as JSON (see
-- runner/src/gameday/model.rs). `live` is 1 while the run goes on and NULL after: the unique
-- constraint lets one run at a time claim it, across processes.
CREATE TABLE gameday_runs (
    id            TEXT PRIMARY KEY,
    scenario      TEXT NOT NULL,
    state         TEXT NOT NULL,
    live          INTEGER UNIQUE,
    started_at_ms BIGINT NOT NULL,
    ended_at_ms   BIGINT,
    record        TEXT NOT NULL
);
CREATE INDEX gameday_runs_started ON gameday_runs (started_at_ms);
CREATE INDEX gameday_runs_scenario ON gameday_runs (scenario, started_at_ms);
