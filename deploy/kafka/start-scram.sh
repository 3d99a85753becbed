#!/usr/bin/env bash
# One Apache Kafka KRaft node whose clients must log in with SASL/SCRAM-SHA-512: what
# docker-compose.yml's kafka service runs (apache/kafka's image has no setting that adds
# SCRAM users, which KRaft takes only when the log is formatted).
#
# Environment (defaults for the apache/kafka image):
#   KAFKA_LIBS=/opt/kafka/libs   KAFKA_DATA=/var/lib/kafka/data   KAFKA_HOST=kafka (advertised)
#   KAFKA_PORT=9092              KAFKA_CONTROLLER_PORT=9093        KAFKA_HEAP_MB=512
#   KAFKA_BROKER_PASSWORD_FILE   the broker's own SCRAM user ("broker") logs in to itself with
#   KAFKA_CLIENT_USER=dti        KAFKA_CLIENT_PASSWORD_FILE        the services' user
#   KAFKA_LOG4J_CONFIG           optional log4j2 configuration file
set -euo pipefail

libs=${KAFKA_LIBS:-/opt/kafka/libs}
data=${KAFKA_DATA:-/var/lib/kafka/data}
host=${KAFKA_HOST:-kafka}
port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
client_user=${KAFKA_CLIENT_USER:-dti}
broker_password=$(tr -d '\n' < "${KAFKA_BROKER_PASSWORD_FILE:?KAFKA_BROKER_PASSWORD_FILE is required}")
client_password=$(tr -d '\n' < "${KAFKA_CLIENT_PASSWORD_FILE:?KAFKA_CLIENT_PASSWORD_FILE is required}")
for value in "$broker_password" "$client_password"; do
  case "$value" in *[\"\;\,\]\=]*|"") echo "start-scram: a password may not be empty or hold \" ; , ] =" >&2; exit 2;; esac
done

mkdir -p "$data"
config="$data/server-scram.properties"
umask 077  # the file holds the broker's password
cat > "$config" <<PROPERTIES
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${controller_port}
listeners=SASL_PLAINTEXT://0.0.0.0:${port},CONTROLLER://127.0.0.1:${controller_port}
advertised.listeners=SASL_PLAINTEXT://${host}:${port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
inter.broker.listener.name=SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="${broker_password}";
log.dirs=${data}/log
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
PROPERTIES

log4j=()
if [ -n "${KAFKA_LOG4J_CONFIG:-}" ]; then log4j=("-Dlog4j2.configurationFile=${KAFKA_LOG4J_CONFIG}"); fi
if [ ! -f "$data/log/meta.properties" ]; then
  cluster_id=$(java -cp "$libs/*" "${log4j[@]}" kafka.tools.StorageTool random-uuid)
  java -cp "$libs/*" "${log4j[@]}" kafka.tools.StorageTool format "--cluster-id=${cluster_id}" "--config=${config}" \
    "--add-scram=SCRAM-SHA-512=[name=broker,password=${broker_password}]" \
    "--add-scram=SCRAM-SHA-512=[name=${client_user},password=${client_password}]"
fi
heap=${KAFKA_HEAP_MB:-512}
exec java "-Xms$((heap < 256 ? heap : 256))m" "-Xmx${heap}m" -XX:+UseG1GC "${log4j[@]}" -cp "$libs/*" kafka.Kafka "$config"
