"""The training side of a job: what runs inside a training process (a local job process or a
Celery worker) to train, publish and report one job."""
