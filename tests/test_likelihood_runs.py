"""experiments/likelihood_runs.py: compare_likelihoods.py's runs compare networks of about
the same size, each a config the schema accepts for the dataset it trains on."""

import pytest
from conftest import experiment

from pixelrnn import cli, defaults

compare = experiment("likelihood_runs")


@pytest.mark.parametrize("dataset", list(compare.RUNS))
def test_every_run_is_within_a_fifth_of_the_softmax_pixelcnns_parameters(dataset):
  runs = compare.RUNS[dataset]
  counts = {name: compare.parameter_count(*runs[name], dataset) for name in runs}
  for name, count in counts.items():
    assert abs(count / counts["softmax_pixelcnn"] - 1) < 0.2, (name, counts)
  # The mixture runs differ from the softmax in their likelihood, not only in size.
  for name, (path, model_overrides) in runs.items():
    config = cli.load_config(path)
    config.data.name = dataset
    config.model.update(model_overrides)
    defaults.validate(config)
    expected = "softmax" if name == "softmax_pixelcnn" else "logistic_mixture"
    assert config.model.likelihood == expected, name
