"""Flower ClientApp: each handler hands the message to fedchain.federation.participant."""

from __future__ import annotations

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from fedchain.federation.participant import train_reply
from fedchain.settings import RunSettings

__all__ = ["app", "make_client_app"]


def make_client_app(settings: RunSettings | None = None) -> ClientApp:
    """A ClientApp with fixed ``settings``, or (None) reading them from the run config."""
    client = ClientApp()

    @client.train()
    def train(message: Message, context: Context) -> Message:
        return train_reply(
            message, context, settings or RunSettings.from_run_config(context.run_config)
        )

    return client


#: The app `flwr run .` loads (settings from [tool.flwr.app.config]).
app = make_client_app()
