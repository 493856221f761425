"""The shell over the stages: the ``callqa`` CLI, the Prefect flow ``qa-batch``, the call sources
(folder, glob, manifest) and the content-keyed analysis cache."""
