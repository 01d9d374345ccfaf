"""gunicorn's logger under the node's configuration builds no access-log line it would throw away."""

from __future__ import annotations

import copy
import logging
from typing import Any

from gunicorn.config import Config

from counter_site import gunicorn_conf
from counter_site.logging import gunicorn_logger_class


def node_config(**changes: object) -> Config:
    config = Config()
    for name in ("logconfig_dict", "accesslog", "errorlog", "loglevel"):
        config.set(name, getattr(gunicorn_conf, name))
    for name, value in changes.items():
        config.set(name, value)
    return config


def test_no_access_line_is_built_while_the_access_logger_drops_them() -> None:
    logger = gunicorn_logger_class()(node_config())
    assert logging.getLogger("gunicorn.access").getEffectiveLevel() == logging.WARNING
    assert logger.access_log_enabled is False


def test_an_access_log_turned_on_is_still_written() -> None:
    logconfig: dict[str, Any] = copy.deepcopy(gunicorn_conf.logconfig_dict)
    logconfig["loggers"]["gunicorn.access"]["level"] = "INFO"
    try:
        logger = gunicorn_logger_class()(node_config(logconfig_dict=logconfig))
        assert logger.access_log_enabled is True
    finally:
        logging.getLogger("gunicorn.access").setLevel(logging.WARNING)
