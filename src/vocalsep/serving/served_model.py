"""The served model's definition for MLflow's models-from-code: no pickled Python in the model.

`mlflow.pyfunc.log_model(python_model=<this file>)` stores the file itself in
the model folder instead of a cloudpickle of a `VocalSeparator` object. At
load time MLflow runs this file (with the logged `vocalsep` package on the
path) and takes the model `set_model` names; the weights come from the
checkpoint artifact through `load_checkpoint` (tensors and plain data only).
So neither `mlflow models serve` nor `mlflow.pyfunc.load_model` unpickles
anything.
"""

from mlflow.models import set_model

from vocalsep.serving.pyfunc import VocalSeparator

set_model(VocalSeparator())
