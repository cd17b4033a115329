#!/bin/bash
# The SCRAM-SHA-512 users of the pipeline's services (compose.yaml's kafka-users one shot).
# Runs in the apache/kafka image against the INTERNAL listener (mutual TLS) with the
# operators' client certificate; idempotent (kafka-configs --alter sets the same password).
# The passwords come from the secret files; kafka-configs takes them only in --add-config,
# so this runs on the cluster's own network, in a container of its own, and exits.
set -euo pipefail
cat > /tmp/admin.properties <<PROPS
security.protocol=SSL
ssl.keystore.type=PEM
ssl.keystore.location=/etc/kafka/secrets/admin.pem
ssl.truststore.type=PEM
ssl.truststore.location=/etc/kafka/secrets/ca.pem
PROPS
for attempt in $(seq 1 60); do
  if /opt/kafka/bin/kafka-broker-api-versions.sh --bootstrap-server kafka-1:9092 \
      --command-config /tmp/admin.properties >/dev/null 2>&1; then break; fi
  echo "waiting for the brokers ($attempt)"; sleep 5
done
add_user() {   # name, secret file
  /opt/kafka/bin/kafka-configs.sh --bootstrap-server kafka-1:9092 --command-config /tmp/admin.properties \
    --alter --entity-type users --entity-name "$1" \
    --add-config "SCRAM-SHA-512=[password=$(cat "$2")]"
}
add_user motcua-worker /run/secrets/kafka-worker-password
add_user motcua-api /run/secrets/kafka-api-password
echo "SCRAM users ready"
