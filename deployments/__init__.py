"""Ray Serve deployments: the HTTP API over the online engine (`configs/serve.yaml`)."""

from deployments.api import FrontierAPI, api
from deployments.app import AppArgs, app_builder, register_experiments

__all__ = ["AppArgs", "FrontierAPI", "api", "app_builder", "register_experiments"]
