"""Creates flexbridge's resources in moto FROM template.yaml, and describes what it made.

    provision.py transform TEMPLATE                       -> CloudFormation JSON on stdout
    provision.py sam-json TEMPLATE                        -> the SAM template as JSON (tags as intrinsics)
    provision.py create TEMPLATE --endpoint URL --stack NAME [--param K=V ...]
                                                          -> stack description JSON on stdout

`create`: SAM -> CloudFormation with aws-sam-translator (offline, stub policy loader), every
function's CodeUri pointed at a dummy zip uploaded to moto first, moto CloudFormation
create_stack, then by hand, from the template's own properties, what moto's CloudFormation
skips: secrets, queue and bucket policies, alarms, bucket notifications, versioning,
encryption and public access block, table TTL and PITR. moto's event source mappings are
disabled (the local runner is the event source). The description (physical names by logical
ID, each function's resolved environment, timeout and events) is what the Rust side
(infra/local/src/stack.rs) deserialises.
"""

import argparse
import copy
import io
import json
import os
import re
import sys
import zipfile

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")

# aws-sam-translator is imported where it is used: a cached translation needs none of it.


class _NoManagedPolicies:
    """Managed policy names are not looked up offline; SAM policy templates need no lookup."""

    def load(self):
        return {}


def to_cfn(template_path, artifacts_bucket="flexbridge-artifacts"):
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    with open(template_path, encoding="utf-8") as f:
        sam = yaml_parse(f.read())
    for logical_id, res in sam.get("Resources", {}).items():
        if res.get("Type") == "AWS::Serverless::Function":
            props = res.setdefault("Properties", {})
            # Keep the crate folder visible in the translation (the code checks use it).
            res.setdefault("Metadata", {})["SourceCodeUri"] = props.get("CodeUri")
            props["CodeUri"] = f"s3://{artifacts_bucket}/{logical_id}.zip"
    return transform(copy.deepcopy(sam), {}, _NoManagedPolicies())


# Stands for the artifacts bucket in a cached translation; each stack puts its own in.
_BUCKET_MARK = "flexbridge-artifacts-bucket-mark"


def to_cfn_cached(template_path, artifacts_bucket):
    """`to_cfn`, translated once per template content (and translator and script version):
    every test provisions a stack, and the translation of the whole template is most of the
    Python work. The cache lives in the venv (`<venv>/flexbridge-cache`), next to the
    translator that made it."""
    import hashlib
    from importlib.metadata import version

    digest = hashlib.sha256()
    for path in (template_path, __file__):
        with open(path, "rb") as f:
            digest.update(f.read())
    digest.update(version("aws-sam-translator").encode())
    cache = os.path.join(sys.prefix, "flexbridge-cache", f"cfn-{digest.hexdigest()[:32]}.json")
    try:
        with open(cache, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = json.dumps(to_cfn(template_path, _BUCKET_MARK))
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        tmp = f"{cache}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, cache)  # atomic: a parallel reader sees all of it or none
    return json.loads(text.replace(_BUCKET_MARK, artifacts_bucket))


def _dummy_zip():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\necho 'run by the flexbridge local runner, not by moto'\n")
    return buf.getvalue()


class Resolver:
    """Resolves the few intrinsics the description needs, against the created stack."""

    def __init__(self, physical, attrs):
        self.physical = physical  # logical -> physical id
        self.attrs = attrs  # (logical, attr) -> value

    def __call__(self, value):
        if isinstance(value, dict) and len(value) == 1:
            (k, v), = value.items()
            if k == "Ref":
                return self.physical.get(v, v)
            if k == "Fn::GetAtt":
                logical, attr = v if isinstance(v, list) else v.split(".", 1)
                return self.attrs.get((logical, attr))
            if k == "Fn::Sub":
                text, extra = (v, {}) if isinstance(v, str) else (v[0], self(v[1]))
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(self._name(m.group(1), extra)), text)
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        return value

    def _name(self, name, extra):
        if name in extra:
            return extra[name]
        if "." in name:
            logical, attr = name.split(".", 1)
            return self.attrs.get((logical, attr))
        return self.physical.get(name, name)


def _logical_of(value):
    """The logical ID a Ref / GetAtt points at."""
    if isinstance(value, dict) and len(value) == 1:
        (k, v), = value.items()
        if k == "Ref":
            return v
        if k == "Fn::GetAtt":
            return v[0] if isinstance(v, list) else v.split(".", 1)[0]
    return None


# Resource types moto's CloudFormation does not implement (it silently skips them). The
# provisioner applies each by hand with the template's own properties, except function URLs,
# which the local runner serves itself.
BY_HAND = {
    "AWS::SecretsManager::Secret",
    "AWS::SQS::QueuePolicy",
    "AWS::S3::BucketPolicy",
    "AWS::CloudWatch::Alarm",
    "AWS::Lambda::Url",
    # moto lists it (even when its Condition is false) without a logical ID; nothing is mailed
    # locally, so it is left out.
    "AWS::SNS::Subscription",
    # moto names it "<stack>-<logical id>-<random>" and then refuses its own name (> 48 chars).
    "AWS::Events::Archive",
    # moto lists them without a logical ID; nothing reads the dashboard or the saved log queries
    # locally, so they are left out (tests/tests/e2e/foundation_docs.rs checks them).
    "AWS::CloudWatch::Dashboard",
    "AWS::Logs::QueryDefinition",
}


def _substitute(value, replacements):
    """Replaces {"Ref": X} by replacements[X] everywhere (secret ARNs created before the stack)."""
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] in replacements:
            return replacements[value["Ref"]]
        return {k: _substitute(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, replacements) for v in value]
    return value


def _is_tls_only(statement):
    cond = statement.get("Condition", {}).get("Bool", {})
    return statement.get("Effect") == "Deny" and str(cond.get("aws:SecureTransport")).lower() == "false"


def _references(value, logical_ids):
    text = json.dumps(value)
    return any(f'"{lid}"' in text or "${" + lid in text for lid in logical_ids)


def create(args):
    import secrets as pysecrets

    import boto3

    region = os.environ["AWS_DEFAULT_REGION"]
    kw = dict(endpoint_url=args.endpoint, region_name=region)
    s3 = boto3.client("s3", **kw)
    cfn_client = boto3.client("cloudformation", **kw)
    sqs = boto3.client("sqs", **kw)
    lam = boto3.client("lambda", **kw)
    events = boto3.client("events", **kw)
    sm = boto3.client("secretsmanager", **kw)
    cw = boto3.client("cloudwatch", **kw)
    account = boto3.client("sts", **kw).get_caller_identity()["Account"]

    artifacts = f"{args.stack}-artifacts"[:63]
    cfn = to_cfn_cached(args.template, artifacts)
    s3.create_bucket(Bucket=artifacts)
    code = _dummy_zip()
    for res in cfn["Resources"].values():
        if res["Type"] == "AWS::Lambda::Function":
            s3.put_object(Bucket=artifacts, Key=res["Properties"]["Code"]["S3Key"], Body=code)

    # Secrets first: functions reference their ARNs.
    secret_arns = {}
    for lid, res in cfn["Resources"].items():
        if res["Type"] != "AWS::SecretsManager::Secret":
            continue
        props = res.get("Properties", {})
        value = props.get("SecretString")
        if value is None:
            gen = props.get("GenerateSecretString", {})
            value = pysecrets.token_hex(max(16, int(gen.get("PasswordLength", 64)) // 2))
            # As Secrets Manager does: the generated string goes into the template's JSON.
            if "GenerateStringKey" in gen:
                doc = json.loads(gen.get("SecretStringTemplate", "{}"))
                doc[gen["GenerateStringKey"]] = value
                value = json.dumps(doc)
        arn = sm.create_secret(
            Name=f"{args.stack}-{lid}", Description=props.get("Description", ""), SecretString=value
        )["ARN"]
        secret_arns[lid] = arn

    # Log groups too (moto's CloudFormation reports them without a logical ID): functions name
    # theirs in LoggingConfig, and a log group's Ref is its name.
    logs = boto3.client("logs", **kw)
    given = dict(p.split("=", 1) for p in args.param)
    log_groups = {}
    for lid, res in cfn["Resources"].items():
        if res["Type"] != "AWS::Logs::LogGroup":
            continue
        name = f"/aws/lambda/{args.stack}-{lid}"
        logs.create_log_group(logGroupName=name)
        days = res.get("Properties", {}).get("RetentionInDays")
        if isinstance(days, dict) and "Ref" in days:
            days = given.get(days["Ref"], cfn.get("Parameters", {}).get(days["Ref"], {}).get("Default"))
        if days is not None:
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(days))
        log_groups[lid] = name

    by_hand = {lid for lid, r in cfn["Resources"].items() if r["Type"] in BY_HAND}
    by_hand |= set(log_groups)
    moto_cfn = _substitute(copy.deepcopy(cfn), {**secret_arns, **log_groups})
    for lid in by_hand:
        del moto_cfn["Resources"][lid]
    for res in moto_cfn["Resources"].values():
        deps = res.get("DependsOn")
        if deps:
            deps = [deps] if isinstance(deps, str) else deps
            res["DependsOn"] = [d for d in deps if d not in by_hand]
            if not res["DependsOn"]:
                del res["DependsOn"]
    skipped_outputs = [k for k, o in moto_cfn.get("Outputs", {}).items() if _references(o, by_hand)]
    for k in skipped_outputs:
        del moto_cfn["Outputs"][k]

    params = [{"ParameterKey": k, "ParameterValue": v} for k, v in (p.split("=", 1) for p in args.param)]
    cfn_client.create_stack(
        StackName=args.stack,
        TemplateBody=json.dumps(moto_cfn),
        Parameters=params,
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    stack = cfn_client.describe_stacks(StackName=args.stack)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise SystemExit(f"stack {args.stack}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}")

    resources = cfn_client.describe_stack_resources(StackName=args.stack)["StackResources"]
    physical = {r["LogicalResourceId"]: r.get("PhysicalResourceId") for r in resources}
    rtype = {r["LogicalResourceId"]: r["ResourceType"] for r in resources}
    rtype_all = dict(rtype)
    # moto reports no physical ID for event buses (nor permissions); a bus's is its Name.
    for lid in physical:
        if physical[lid] is None and rtype[lid] == "AWS::Events::EventBus":
            name = Resolver({"AWS::StackName": args.stack}, {})(moto_cfn["Resources"][lid]["Properties"]["Name"])
            physical[lid] = name
    physical = {lid: p for lid, p in physical.items() if p is not None}
    rtype = {lid: t for lid, t in rtype.items() if lid in physical}
    missing = [lid for lid in moto_cfn["Resources"] if lid not in rtype_all]
    if missing:
        raise SystemExit(f"moto did not create: {', '.join(sorted(missing))}")
    for lid, arn in secret_arns.items():
        physical[lid] = arn
        rtype[lid] = "AWS::SecretsManager::Secret"
    for lid, name in log_groups.items():
        physical[lid] = name
        rtype[lid] = "AWS::Logs::LogGroup"

    attrs = {}
    queues = {}
    for lid, url in physical.items():
        if rtype[lid] != "AWS::SQS::Queue":
            continue
        a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        attrs[(lid, "Arn")] = a["QueueArn"]
        attrs[(lid, "QueueName")] = a["QueueArn"].rsplit(":", 1)[1]
        attrs[(lid, "QueueUrl")] = url
        redrive = json.loads(a["RedrivePolicy"]) if "RedrivePolicy" in a else None
        queues[lid] = {
            "url": url,
            "arn": a["QueueArn"],
            "name": attrs[(lid, "QueueName")],
            "visibility_timeout_s": int(a.get("VisibilityTimeout", "30")),
            "max_receive_count": int(redrive["maxReceiveCount"]) if redrive else None,
            "dead_letter_arn": redrive["deadLetterTargetArn"] if redrive else None,
        }
    arn_to_queue = {q["arn"]: lid for lid, q in queues.items()}
    for q in queues.values():
        q["dead_letter_queue"] = arn_to_queue.get(q.pop("dead_letter_arn"))

    for lid, name in physical.items():
        if rtype[lid] == "AWS::Events::Rule":
            bus = cfn["Resources"][lid]["Properties"].get("EventBusName")
            if isinstance(bus, dict):
                bus = physical.get(_logical_of(bus))
            rule = events.describe_rule(Name=name, **({"EventBusName": bus} if bus else {}))
            attrs[(lid, "Arn")] = rule["Arn"]
        elif rtype[lid] == "AWS::S3::Bucket":
            attrs[(lid, "Arn")] = f"arn:aws:s3:::{name}"
        elif rtype[lid] == "AWS::Events::EventBus":
            attrs[(lid, "Arn")] = f"arn:aws:events:{region}:{account}:event-bus/{name}"
            attrs[(lid, "Name")] = name

    functions = {}
    for lid, name in physical.items():
        if rtype[lid] != "AWS::Lambda::Function":
            continue
        conf = lam.get_function_configuration(FunctionName=name)
        attrs[(lid, "Arn")] = conf["FunctionArn"]
        functions[lid] = {
            "logical_id": lid,
            "name": name,
            "arn": conf["FunctionArn"],
            "timeout_s": conf.get("Timeout", 3),
            "memory_mb": conf.get("MemorySize", 128),
            "env": conf.get("Environment", {}).get("Variables", {}),
            "events": [],
        }
    pseudo = {"AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": "aws",
              "AWS::StackName": args.stack, "AWS::URLSuffix": "amazonaws.com"}
    # Parameters as the stack got them (else their defaults): alarms name some (EvaluationPeriods).
    given = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
    params = {k: given.get(k) or str(v.get("Default", "")) for k, v in cfn.get("Parameters", {}).items()}
    resolve = Resolver({**params, **physical, **pseudo}, attrs)

    # Events, read from the CloudFormation that created them, resolved against the stack.
    for lid, res in cfn["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Lambda::EventSourceMapping":
            fn = _logical_of(props["FunctionName"])
            queue = _logical_of(props["EventSourceArn"])
            if queue not in queues:
                continue
            functions[fn]["events"].append({
                "kind": "sqs",
                "id": lid,
                "queue": queue,
                "queue_url": queues[queue]["url"],
                "queue_arn": queues[queue]["arn"],
                "batch_size": int(props.get("BatchSize", 10)),
                "maximum_batching_window_s": int(props.get("MaximumBatchingWindowInSeconds", 0)),
                "maximum_concurrency": (props.get("ScalingConfig") or {}).get("MaximumConcurrency"),
                "report_batch_item_failures": "ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                "enabled": props.get("Enabled", True) in (True, "true", "True"),
            })
        elif res["Type"] == "AWS::Events::Rule" and "ScheduleExpression" in props:
            rule = events.describe_rule(Name=physical[lid])
            for target in props.get("Targets", []):
                fn = _logical_of(target["Arn"])
                if fn not in functions:
                    continue
                functions[fn]["events"].append({
                    "kind": "schedule",
                    "id": lid,
                    "expression": rule["ScheduleExpression"],
                    "enabled": rule.get("State", "ENABLED") == "ENABLED",
                    "input": target.get("Input"),
                })
        elif res["Type"] == "AWS::Lambda::Url":
            fn = _logical_of(props["TargetFunctionArn"])
            functions[fn]["events"].append({
                "kind": "function_url",
                "id": lid,
                "auth_type": props.get("AuthType", "NONE"),
            })

    # moto's own event source mappings would receive every message sent (to run the function
    # in Docker, which fails) and so inflate ApproximateReceiveCount and hasten redrive. The
    # local runner is the event source mapping here, so moto's are switched off.
    for lid, uuid in physical.items():
        if rtype[lid] == "AWS::Lambda::EventSourceMapping":
            lam.update_event_source_mapping(UUID=uuid, Enabled=False)

    # What moto's CloudFormation skips, applied by hand from the template.
    ddb = boto3.client("dynamodb", **kw)
    buckets = {}
    for lid, res in cfn["Resources"].items():
        props = resolve(res.get("Properties", {}))
        if res["Type"] == "AWS::DynamoDB::Table":
            ttl = props.get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled"):
                ddb.update_time_to_live(
                    TableName=physical[lid],
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
                )
            if props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
                ddb.update_continuous_backups(
                    TableName=physical[lid],
                    PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
                )
        elif res["Type"] == "AWS::SQS::QueuePolicy":
            for url in props["Queues"]:
                sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})
        elif res["Type"] == "AWS::S3::BucketPolicy":
            # moto enforces bucket policies but only speaks plain HTTP: the TLS-only deny would
            # refuse every local request, so it is the one statement not applied here.
            doc = dict(props["PolicyDocument"])
            doc["Statement"] = [st for st in doc["Statement"] if not _is_tls_only(st)]
            if doc["Statement"]:
                s3.put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(doc))
        elif res["Type"] == "AWS::Events::Archive":
            name = props.get("ArchiveName") or f"{args.stack}-{lid}"[:48]
            days = res["Properties"].get("RetentionDays", 0)
            if isinstance(days, dict) and "Ref" in days:
                given = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
                days = given.get(days["Ref"]) or cfn["Parameters"][days["Ref"]].get("Default", 0)
            kwargs = dict(ArchiveName=name, EventSourceArn=props["SourceArn"], RetentionDays=int(days))
            if "EventPattern" in props:
                kwargs["EventPattern"] = json.dumps(props["EventPattern"])
            if "Description" in props:
                kwargs["Description"] = props["Description"]
            events.create_archive(**kwargs)
            physical[lid] = name
            rtype[lid] = res["Type"]
        elif res["Type"] == "AWS::CloudWatch::Alarm":
            alarm = {k: v for k, v in props.items() if k not in ("Dimensions",)}
            alarm["Dimensions"] = props.get("Dimensions", [])
            alarm["AlarmName"] = f"{args.stack}-{lid}"
            for k in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
                if k in alarm:
                    alarm[k] = int(alarm[k])
            if "Threshold" in alarm:
                alarm["Threshold"] = float(alarm["Threshold"])
            cw.put_metric_alarm(**alarm)
            physical[lid] = alarm["AlarmName"]
            rtype[lid] = res["Type"]
        elif res["Type"] == "AWS::S3::Bucket":
            bucket = physical[lid]
            buckets[lid] = bucket
            if "VersioningConfiguration" in props:
                s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=props["VersioningConfiguration"])
            rules = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration")
            if rules:
                s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
                    {"ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"]} for r in rules
                ]})
            if "PublicAccessBlockConfiguration" in props:
                s3.put_public_access_block(
                    Bucket=bucket, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
                )
            notif = res.get("Properties", {}).get("NotificationConfiguration")
            if not notif:
                continue
            config = {}
            for cfn_key, api_key, target_key in (
                ("QueueConfigurations", "QueueConfigurations", "QueueArn"),
                ("TopicConfigurations", "TopicConfigurations", "TopicArn"),
                ("LambdaConfigurations", "LambdaFunctionConfigurations", "LambdaFunctionArn"),
            ):
                entries = []
                for i, c in enumerate(notif.get(cfn_key, [])):
                    c = resolve(c)
                    target = c.get("Queue") or c.get("Topic") or c.get("Function")
                    entry = {"Id": f"{lid}-{cfn_key}-{i}", target_key: target, "Events": [c["Event"]]}
                    rules = c.get("Filter", {}).get("S3Key", {}).get("Rules")
                    if rules:
                        entry["Filter"] = {"Key": {"FilterRules": rules}}
                    entries.append(entry)
                if entries:
                    config[api_key] = entries
            s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)

    by_type = lambda t: {lid: physical[lid] for lid in physical if rtype[lid] == t}  # noqa: E731
    out = {
        "name": args.stack,
        "endpoint": args.endpoint,
        "region": region,
        "account_id": account,
        "parameters": {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])},
        "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        "tables": by_type("AWS::DynamoDB::Table"),
        "queues": queues,
        "buckets": buckets,
        "event_buses": by_type("AWS::Events::EventBus"),
        "secrets": by_type("AWS::SecretsManager::Secret"),
        "functions": functions,
        "resources": {lid: {"type": rtype[lid], "physical_id": physical[lid]} for lid in physical},
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=True)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("transform")
    t.add_argument("template")
    j = sub.add_parser("sam-json")
    j.add_argument("template")
    c = sub.add_parser("create")
    c.add_argument("template")
    c.add_argument("--endpoint", required=True)
    c.add_argument("--stack", required=True)
    c.add_argument("--param", action="append", default=[])
    args = p.parse_args()
    if args.cmd == "transform":
        json.dump(to_cfn_cached(args.template, "flexbridge-artifacts"), sys.stdout, indent=1)
    elif args.cmd == "sam-json":
        from samtranslator.yaml_helper import yaml_parse

        with open(args.template, encoding="utf-8") as f:
            json.dump(yaml_parse(f.read()), sys.stdout, indent=1)
    else:
        create(args)


if __name__ == "__main__":
    main()
