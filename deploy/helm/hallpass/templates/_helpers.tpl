{{/* Names, labels and the pieces every hallpass pod shares. */}}

{{- define "hallpass.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hallpass.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "hallpass.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "hallpass.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "hallpass.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "hallpass.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hallpass
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "processor") */}}
{{- define "hallpass.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hallpass.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Every pod of this release that talks to Kafka or the registry carries this label. */}}
{{- define "hallpass.clientLabel" -}}
hallpass.io/client: {{ .Release.Name | quote }}
{{- end -}}

{{- define "hallpass.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "hallpass.bootstrap" -}}
{{- printf "%s-kafka-bootstrap:%d" .Values.kafka.name (int .Values.kafka.port) -}}
{{- end -}}

{{- define "hallpass.registryUrl" -}}
{{- if .Values.registry.enabled -}}
{{- printf "http://%s-registry:%d/apis/ccompat/v7" (include "hallpass.fullname" .) (int .Values.registry.port) -}}
{{- else -}}
{{- required "registry.url is needed when registry.enabled is false" .Values.registry.url -}}
{{- end -}}
{{- end -}}

{{- define "hallpass.registrySecret" -}}
{{- default (printf "%s-registry-users" (include "hallpass.fullname" .)) .Values.registry.auth.existingSecret -}}
{{- end -}}

{{- define "hallpass.partnerSecret" -}}
{{- default (printf "%s-partner-secrets" (include "hallpass.fullname" .)) .Values.partnerSecrets.existingSecret -}}
{{- end -}}

{{/*
The environment of a hallpass command: (dict "root" $ "user" "hallpass-processor")
Kafka over TLS with SCRAM-SHA-512 as `user`; secrets read from the private copies.
*/}}
{{- define "hallpass.env" -}}
- name: HALLPASS_BOOTSTRAP_SERVERS
  value: {{ include "hallpass.bootstrap" .root | quote }}
- name: HALLPASS_SCHEMA_REGISTRY_URL
  value: {{ include "hallpass.registryUrl" .root | quote }}
{{- if and .root.Values.registry.enabled .root.Values.registry.auth.enabled }}
- name: HALLPASS_SCHEMA_REGISTRY_USER_INFO_FILE
  value: /run/hallpass/private/registry.user-info
{{- end }}
- name: HALLPASS_SECURITY_PROTOCOL
  value: sasl_ssl
- name: HALLPASS_SASL_MECHANISM
  value: scram-sha-512
- name: HALLPASS_SASL_USERNAME
  value: {{ .user | quote }}
- name: HALLPASS_SASL_PASSWORD_FILE
  value: /run/hallpass/private/kafka-password
- name: HALLPASS_SSL_CA_LOCATION
  value: /etc/hallpass/kafka-ca/ca.crt
- name: HALLPASS_CONTRACTS_DIR
  value: /etc/hallpass/contracts
- name: HALLPASS_DATA_DIR
  value: /var/lib/hallpass
- name: HALLPASS_METRICS_ADDR
  value: 0.0.0.0
{{- with .root.Values.strimzi.topicPrefix }}
- name: HALLPASS_TOPIC_PREFIX
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{/*
The init container that copies the mounted secrets (0440, group fsGroup) into a private
in-memory directory with mode 0400: hallpass refuses secret files its group may read.
With "partners": fail unless the pseudonym secrets name each of them (`contracts apply`
would otherwise make one in its private copy and record its fingerprint on the bus, and the
workers, given the Secret, would then refuse to start).
*/}}
{{- define "hallpass.privateCopy" -}}
- name: private-secrets
  image: {{ include "hallpass.image" .root }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  command: ["/bin/sh", "-c"]
  args:
    - >-
      umask 077 && for f in /var/run/hallpass/secrets/*; do install -m 0400 "$f" /run/hallpass/private/; done
      {{- range .partners }}
      && { grep -q '"{{ . }}"' /run/hallpass/private/partner-secrets.json
      || { echo "the partner secrets Secret has no pseudonym secret for {{ . }}: add it first"; exit 1; }; }
      {{- end }}
  securityContext:
    {{- toYaml .root.Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: secrets
      mountPath: /var/run/hallpass/secrets
      readOnly: true
    - name: private
      mountPath: /run/hallpass/private
{{- end -}}

{{/* The mounts of a hallpass container. */}}
{{- define "hallpass.volumeMounts" -}}
- name: private
  mountPath: /run/hallpass/private
  readOnly: true
- name: kafka-ca
  mountPath: /etc/hallpass/kafka-ca
  readOnly: true
- name: contracts
  mountPath: /etc/hallpass/contracts
  readOnly: true
- name: data
  mountPath: /var/lib/hallpass
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/*
The volumes of a hallpass pod: (dict "root" $ "user" "hallpass-processor" "partnerSecrets" true)
Kafka password from the Secret Strimzi's User Operator writes for `user`; the registry's
user-info (the writer's, or the read-only user's with "registryUser" "reader"); the partners'
pseudonym secrets when `partnerSecrets`. The data volume is an
emptyDir unless "data" names a volume source.
*/}}
{{- define "hallpass.volumes" -}}
- name: secrets
  projected:
    defaultMode: 288  # 0440: the owner (root) and the group fsGroup read
    sources:
      - secret:
          name: {{ .user }}
          items:
            - key: password
              path: kafka-password
{{- if and .root.Values.registry.enabled .root.Values.registry.auth.enabled }}
      - secret:
          name: {{ include "hallpass.registrySecret" .root }}
          items:
            - key: {{ printf "%s.user-info" (default "writer" .registryUser) }}
              path: registry.user-info
{{- end }}
{{- if .partnerSecrets }}
      - secret:
          name: {{ include "hallpass.partnerSecret" .root }}
          items:
            - key: partner-secrets.json
              path: partner-secrets.json
{{- end }}
- name: private
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
- name: kafka-ca
  secret:
    secretName: {{ printf "%s-cluster-ca-cert" .root.Values.kafka.name }}
    defaultMode: 292  # 0444: a certificate, not a secret
    items:
      - key: ca.crt
        path: ca.crt
- name: contracts
  configMap:
    name: {{ include "hallpass.fullname" .root }}-contracts
- name: tmp
  emptyDir: {}
{{- if .data }}
- name: data
  {{- toYaml .data | nindent 2 }}
{{- else }}
- name: data
  emptyDir: {}
{{- end }}
{{- end -}}

{{/* The partner ids of the contracts (JSON list). */}}
{{- define "hallpass.partners" -}}
{{- $partners := list }}
{{- range $file, $text := .Values.contracts }}
{{- if not (hasSuffix ".lock.yaml" $file) }}
{{- $partners = append $partners (fromYaml $text).partner }}
{{- end }}
{{- end }}
{{- toJson $partners }}
{{- end -}}
