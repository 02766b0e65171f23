"""The agent's structured logger (JSON lines, with session and task ids where known)."""

from aws_lambda_powertools import Logger

logger = Logger(service="htcgrid-agent")
