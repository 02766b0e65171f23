"""The grid's IAM, as deployed: ``template.yaml`` rendered to CloudFormation and its policies
resolved to the ARNs a stack would have, with a small evaluator for the statements it uses.

moto does not enforce IAM, so the tests judge the policies themselves: which principal (a
function's role, a workflow's role, the reaper schedule's role, ``ClientPolicy``,
``AgentPolicy``, ``OperatorPolicy``) is allowed which action on which resource. The template is
translated by the local grid (``htcgrid_local.template``, aws-sam-translator, so the roles SAM
generates are included) and every intrinsic is resolved here: against a stack's real physical
ids when one exists on an emulator, else against names made up the way CloudFormation makes
them. The evaluator knows the policy grammar the template uses (Allow and Deny, Action and
Resource lists with ``*`` and ``?`` wildcards, String conditions) and fails on anything else,
so a statement it cannot judge is never taken as a grant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from htcgrid_local.template import translate

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "template.yaml"
PARTITION = "aws"
REGION = "us-east-1"
ACCOUNT = "123456789012"

#: The property that names a resource, where the template names it (else CloudFormation does).
_NAME_PROPERTIES = {
    "AWS::SQS::Queue": "QueueName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Scheduler::Schedule": "Name",
    "AWS::CloudTrail::Trail": "TrailName",
}


class UnknownPolicyGrammar(ValueError):
    """A statement uses policy grammar this evaluator does not judge (a new condition
    operator or key, NotAction...): teach it, rather than guess."""


# --- rendering -------------------------------------------------------------------------------


@dataclass
class Stack:
    """Where a rendered stack lives: its name and id, and each resource's physical id."""

    name: str = "htcgrid"
    stack_id: str = ""
    physical_ids: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.stack_id:
            self.stack_id = (
                f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT}:stack/{self.name}/"
                "00000000-0000-0000-0000-000000000000"
            )


def render(
    parameters: Mapping[str, str] | None = None, stack: Stack | None = None
) -> dict[str, Any]:
    """``template.yaml`` translated and resolved: conditions decided, resources whose
    condition is false dropped, every Ref, GetAtt, Sub, If, Join and Select replaced by its
    value."""
    stack = stack or Stack()
    translated = translate(
        TEMPLATE, staging_bucket="htcgrid-render", region=REGION, parameters=dict(parameters or {})
    ).template
    return _Resolver(translated, dict(parameters or {}), stack).resolved()


class _Resolver:
    def __init__(self, template: dict[str, Any], parameters: dict[str, str], stack: Stack):
        self.template = template
        self.stack = stack
        self.parameters = {
            name: str(parameters.get(name, spec.get("Default", "")))
            for name, spec in template.get("Parameters", {}).items()
        }
        self.conditions: dict[str, bool] = {}
        self.resources: dict[str, Any] = template["Resources"]

    def resolved(self) -> dict[str, Any]:
        for name in self.template.get("Conditions", {}):
            self.condition(name)
        kept = {
            logical_id: resource
            for logical_id, resource in self.resources.items()
            if "Condition" not in resource or self.conditions[resource["Condition"]]
        }
        return {
            "Physical": {k: self.physical_id(k) for k in kept},
            "Parameters": self.parameters,
            "Conditions": self.conditions,
            "Resources": {k: self.value(v) for k, v in kept.items()},
            "Outputs": {
                k: self.value(v)
                for k, v in self.template.get("Outputs", {}).items()
                if "Condition" not in v or self.conditions[v["Condition"]]
            },
        }

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self.value(self.template["Conditions"][name]))
        return self.conditions[name]

    # Physical ids and attributes, the way CloudFormation (and moto) form them.
    def physical_id(self, logical_id: str) -> str:
        if logical_id in self.stack.physical_ids:
            return self.stack.physical_ids[logical_id]
        resource = self.resources[logical_id]
        kind = resource["Type"]
        name_property = _NAME_PROPERTIES.get(kind)
        properties = resource.get("Properties", {})
        if name_property and name_property in properties:
            name = str(self.value(properties[name_property]))
        else:
            name = f"{self.stack.name}-{logical_id}-TESTSUFFIX0001"
        if kind == "AWS::S3::Bucket":
            name = name.lower()
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
        if kind == "AWS::StepFunctions::StateMachine":
            return f"arn:{PARTITION}:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
        if kind == "AWS::IAM::ManagedPolicy":
            return f"arn:{PARTITION}:iam::{ACCOUNT}:policy/{name}"
        if kind == "AWS::Lambda::LayerVersion":
            return f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:layer:{name}:1"
        return name

    def attribute(self, logical_id: str, attribute: str) -> str:
        kind = self.resources[logical_id]["Type"]
        physical = self.physical_id(logical_id)
        if kind == "AWS::SQS::Queue":
            name = physical.rstrip("/").rsplit("/", 1)[-1]
            return {"Arn": f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{name}", "QueueName": name}[
                attribute
            ]
        if kind == "AWS::StepFunctions::StateMachine":
            return {"Arn": physical, "Name": physical.rsplit(":", 1)[-1]}[attribute]
        arns = {
            "AWS::DynamoDB::Table": f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{physical}",
            "AWS::S3::Bucket": f"arn:{PARTITION}:s3:::{physical}",
            "AWS::Lambda::Function": (
                f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{physical}"
            ),
            "AWS::IAM::Role": f"arn:{PARTITION}:iam::{ACCOUNT}:role/{physical}",
            "AWS::Logs::LogGroup": (
                f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{physical}:*"
            ),
            "AWS::CloudTrail::Trail": (
                f"arn:{PARTITION}:cloudtrail:{REGION}:{ACCOUNT}:trail/{physical}"
            ),
        }
        if attribute == "Arn" and kind in arns:
            return arns[kind]
        raise UnknownPolicyGrammar(f"GetAtt {logical_id}.{attribute} ({kind})")

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::StackName": self.stack.name,
            "AWS::StackId": self.stack.stack_id,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.physical_id(name)

    def sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return self.attribute(logical_id, attribute)
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            values = [self.value(item) for item in node]
            return [v for v in values if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, argument),) = node.items()
            if key == "Ref":
                return _NO_VALUE if argument == "AWS::NoValue" else self.ref(argument)
            if key == "Fn::GetAtt":
                logical_id, attribute = (
                    argument if isinstance(argument, list) else argument.split(".", 1)
                )
                return self.attribute(logical_id, attribute)
            if key == "Fn::Sub":
                if isinstance(argument, str):
                    return self.sub(argument, {})
                text, variables = argument
                return self.sub(text, {k: self.value(v) for k, v in variables.items()})
            if key == "Fn::If":
                name, when_true, when_false = argument
                return self.value(when_true if self.condition(name) else when_false)
            if key == "Fn::Equals":
                left, right = (self.value(a) for a in argument)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.value(argument[0])
            if key == "Fn::Or":
                return any(self.value(a) for a in argument)
            if key == "Fn::And":
                return all(self.value(a) for a in argument)
            if key == "Condition":
                return self.condition(argument)
            if key == "Fn::Join":
                separator, items = argument
                return separator.join(str(v) for v in self.value(items))
            if key == "Fn::Select":
                index, items = argument
                return self.value(items)[int(self.value(index))]
        resolved = {k: self.value(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}


class _NoValue:
    """``Ref AWS::NoValue``: the property or list item disappears."""


_NO_VALUE = _NoValue()


# --- principals and their statements -------------------------------------------------------


#: Condition keys the counters of a run cannot know, checked by tests of their own: the
#: partition keys of a DynamoDB write (test_policies checks them against what the code writes).
KEYS_CHECKED_ELSEWHERE = frozenset({"dynamodb:LeadingKeys"})


def _as_tuple(value: Any) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, list) else (value,)


def wildcard_match(pattern: str, value: str) -> bool:
    """IAM's ``*`` and ``?``, and nothing else (``[`` is literal in IAM, not in fnmatch)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


@dataclass(frozen=True)
class Statement:
    """One policy statement, its lists as tuples."""

    #: The policy it comes from: a managed policy's logical id, or "<role>/<inline policy>".
    source: str
    sid: str
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    condition: Mapping[str, Mapping[str, Any]]

    @classmethod
    def parse(cls, source: str, document: Mapping[str, Any]) -> Statement:
        unknown = set(document) - {"Sid", "Effect", "Action", "Resource", "Condition"}
        if unknown:
            raise UnknownPolicyGrammar(f"{source}: statement keys {sorted(unknown)}")
        return cls(
            source=source,
            sid=str(document.get("Sid", "")),
            effect=str(document["Effect"]),
            actions=_as_tuple(document["Action"]),
            resources=_as_tuple(document["Resource"]),
            condition=document.get("Condition", {}),
        )

    def names_action(self, action: str) -> bool:
        # Action names are case-insensitive in IAM.
        return any(wildcard_match(p.lower(), action.lower()) for p in self.actions)

    def names_resource(self, resource: str) -> bool:
        return any(wildcard_match(p, resource) for p in self.resources)

    def condition_holds(self, context: Mapping[str, str]) -> bool:
        """Whether the request context satisfies every condition (keys the counters cannot
        know, ``KEYS_CHECKED_ELSEWHERE``, count as satisfied when the context lacks them)."""
        for operator, tests in self.condition.items():
            qualifier, _, base = operator.rpartition(":")
            if base not in ("StringLike", "StringEquals") or qualifier not in ("", "ForAllValues"):
                raise UnknownPolicyGrammar(f"{self.source}: condition operator {operator}")
            for key, expected in tests.items():
                if key not in context:
                    if key in KEYS_CHECKED_ELSEWHERE:
                        continue
                    raise UnknownPolicyGrammar(f"{self.source}: no value for condition key {key}")
                compare = wildcard_match if base == "StringLike" else str.__eq__
                if not any(compare(pattern, context[key]) for pattern in _as_tuple(expected)):
                    return False
        return True

    def applies(self, action: str, resource: str, context: Mapping[str, str]) -> bool:
        return (
            self.names_action(action)
            and self.names_resource(resource)
            and self.condition_holds(context)
        )


@dataclass
class Principal:
    """Who acts (a logical id of the template) and what its policies say."""

    name: str
    statements: list[Statement]
    #: AWS managed policies attached by ARN: not in the template, so judged by name.
    aws_managed: list[str] = field(default_factory=list)

    def allows(self, action: str, resource: str, context: Mapping[str, str] | None = None) -> bool:
        """Whether the identity policies allow ``action`` on ``resource`` in a request with
        ``context`` (condition keys): some Allow applies and no Deny does, as in IAM."""
        applying = [s for s in self.statements if s.applies(action, resource, context or {})]
        return any(s.effect == "Allow" for s in applying) and not any(
            s.effect == "Deny" for s in applying
        )

    def grants(self) -> list[tuple[Statement, str, str]]:
        """Every (statement, action, resource pattern) this principal is allowed."""
        return [
            (statement, action, resource)
            for statement in self.statements
            if statement.effect == "Allow"
            for action in statement.actions
            for resource in statement.resources
        ]


def _policy_statements(source: str, document: Mapping[str, Any]) -> list[Statement]:
    listed = document["Statement"]
    return [Statement.parse(source, s) for s in (listed if isinstance(listed, list) else [listed])]


def principals(rendered: Mapping[str, Any]) -> dict[str, Principal]:
    """Every principal of the rendered stack, by the logical id of what acts: each managed
    policy (for whoever holds it), each function and state machine (its role), each schedule
    (the role it assumes)."""
    resources: Mapping[str, Any] = rendered["Resources"]
    found: dict[str, Principal] = {}
    roles: dict[str, Principal] = {}
    for logical_id, resource in resources.items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::ManagedPolicy":
            found[logical_id] = Principal(
                logical_id, _policy_statements(logical_id, properties["PolicyDocument"])
            )
        elif resource["Type"] == "AWS::IAM::Role":
            statements = [
                statement
                for policy in properties.get("Policies", [])
                for statement in _policy_statements(
                    f"{logical_id}/{policy['PolicyName']}", policy["PolicyDocument"]
                )
            ]
            arn = f"arn:{PARTITION}:iam::{ACCOUNT}:role/{rendered['Physical'][logical_id]}"
            roles[arn] = Principal(logical_id, statements, properties.get("ManagedPolicyArns", []))
    for logical_id, resource in resources.items():
        properties = resource.get("Properties", {})
        role_arn = {
            "AWS::Lambda::Function": properties.get("Role"),
            "AWS::StepFunctions::StateMachine": properties.get("RoleArn"),
            "AWS::Scheduler::Schedule": properties.get("Target", {}).get("RoleArn"),
        }.get(resource["Type"])
        if role_arn is not None:
            role = roles[role_arn]
            found[logical_id] = Principal(logical_id, role.statements, role.aws_managed)
    return found
