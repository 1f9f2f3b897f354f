"""``mutual_information_estimator_trainer``: a flow policy plus an InfoNCE estimate of the
mutual information between observation and action-chunk representations."""
