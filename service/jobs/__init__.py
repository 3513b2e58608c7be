"""Survey jobs: a zip of drone photos or an orthomosaic GeoTIFF, analysed in the background.

The database is the source of truth for a job's state and progress, whichever runner
executes it: the in-process runner (a thread in the API process, the default) or Celery
workers on Redis (`PATROL_BROKER_URL`). Rooms:

- `models`: the `jobs` and `job_items` tables (migration 0003).
- `inputs`, `archive`: what a survey upload is, checked before a job exists (zip bombs,
  path traversal, corrupt GeoTIFFs); `store`: where inputs live under the data dir.
- `queue`: create, claim (with a lease), heartbeat, finish, cancel - SQL only.
- `work`, `drone_survey`, `ortho_survey`: the job function, the same for both runners.
- `survey_changes`: two orthomosaic surveys compared (vision.change), each new structure a
  candidate; `change_request`: what it compares, checked at submit; `survey_dsm`: a survey's DSM.
- `runner` (in-process thread), `celery_app` (Celery task), `dispatch` (how the API hands
  a job over).
"""
