"""The guide's own keras-tuner build function: the reference a tuneforge search is checked against."""

from __future__ import annotations

from collections.abc import Callable

import keras
import keras_tuner as kt

ACTIVATIONS = ["relu", "tanh", "sigmoid"]
DROPOUTS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
OPTIMIZERS = ["rmsprop", "adam", "sgd", "nadam", "adadelta"]


def guide_build(n_features: int) -> Callable[[kt.HyperParameters], keras.Model]:
    """The guide's build function: 1-10 Dense layers (units, activation, dropout each), an optimizer."""

    def build(hp: kt.HyperParameters) -> keras.Model:
        model = keras.Sequential([keras.Input(shape=(n_features,))])
        for i in range(hp.Int("num_layers", 1, 10)):
            units = hp.Int(f"units{i}", 8, 128, step=8)
            model.add(keras.layers.Dense(units, activation=hp.Choice(f"activation{i}", ACTIVATIONS)))
            model.add(keras.layers.Dropout(hp.Choice(f"dropout{i}", DROPOUTS)))
        model.add(keras.layers.Dense(1, activation="sigmoid"))
        model.compile(
            optimizer=hp.Choice("optimizer", OPTIMIZERS), loss="binary_crossentropy", metrics=["accuracy"]
        )
        return model

    return build
