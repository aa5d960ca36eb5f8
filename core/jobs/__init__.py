"""The job records and the stores both sides of a job read and write: the API process submits and
reports, the training process trains and records progress."""
