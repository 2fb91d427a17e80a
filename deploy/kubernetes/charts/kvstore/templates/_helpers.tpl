{{/*
Names, labels and the values derived from them. Every object takes its labels from
kvstore.labels; selectors use only kvstore.selectorLabels (name and instance), which never
change over a release's life, because a StatefulSet's selector is immutable.
*/}}

{{/* kvstore.name is the chart name, or nameOverride. */}}
{{- define "kvstore.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
kvstore.fullname prefixes every resource. Kept to 40 characters: the pods' names
("<fullname>-<ordinal>") end up in DNS labels, PVC names and member names.
*/}}
{{- define "kvstore.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* kvstore.chart is "<name>-<version>" for the helm.sh/chart label. */}}
{{- define "kvstore.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* kvstore.selectorLabels: the only labels used in selectors. */}}
{{- define "kvstore.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kvstore.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
kvstore.labels: the recommended app.kubernetes.io labels for every object of the release.
Objects that are not members (the test pod, the membership job) pass a component and get a
name of their own, so that no Service or PodDisruptionBudget ever selects them.
Call as (include "kvstore.labels" .) or (include "kvstore.labels" (dict "ctx" . "component" "test")).
*/}}
{{- define "kvstore.labels" -}}
{{- $ctx := . -}}
{{- $component := "store" -}}
{{- if hasKey . "ctx" -}}
{{- $ctx = .ctx -}}
{{- $component = .component -}}
{{- end -}}
helm.sh/chart: {{ include "kvstore.chart" $ctx }}
{{- if eq $component "store" }}
{{ include "kvstore.selectorLabels" $ctx }}
{{- else }}
app.kubernetes.io/name: {{ include "kvstore.name" $ctx }}-{{ $component }}
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
{{- end }}
app.kubernetes.io/component: {{ $component }}
app.kubernetes.io/part-of: kvstore
app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
{{- end -}}

{{/* kvstore.headlessName names the headless Service that gives members stable DNS names. */}}
{{- define "kvstore.headlessName" -}}
{{- include "kvstore.fullname" . }}-headless
{{- end -}}

{{/* kvstore.image is "<repository>@<digest>"; the schema guarantees the digest. */}}
{{- define "kvstore.image" -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- end -}}

{{/* kvstore.clientScheme and kvstore.peerScheme follow the TLS switches. */}}
{{- define "kvstore.clientScheme" -}}
{{- if .Values.tls.client.enabled }}https{{ else }}http{{ end -}}
{{- end -}}
{{- define "kvstore.peerScheme" -}}
{{- if .Values.tls.peer.enabled }}https{{ else }}http{{ end -}}
{{- end -}}

{{/* kvstore.peerDomain is the DNS suffix shared by the members: "<headless>.<ns>.svc.<domain>". */}}
{{- define "kvstore.peerDomain" -}}
{{- printf "%s.%s.svc.%s" (include "kvstore.headlessName" .) .Release.Namespace .Values.cluster.domain -}}
{{- end -}}

{{/* kvstore.clientEndpoint is the client Service URL, for tests and the membership job. */}}
{{- define "kvstore.clientEndpoint" -}}
{{- printf "%s://%s.%s.svc.%s:%d" (include "kvstore.clientScheme" .) (include "kvstore.fullname" .) .Release.Namespace .Values.cluster.domain (int .Values.ports.client) -}}
{{- end -}}

{{/* kvstore.token is the initial cluster token. */}}
{{- define "kvstore.token" -}}
{{- default (printf "%s-%s" (include "kvstore.fullname" .) .Release.Namespace) .Values.cluster.token -}}
{{- end -}}

{{/*
kvstore.tlsVolumes and kvstore.tlsMounts: the Secrets named in tls.*, mounted read-only.
*/}}
{{- define "kvstore.tlsVolumes" -}}
{{- if .Values.tls.client.enabled }}
- name: client-tls
  secret:
    secretName: {{ .Values.tls.client.secretName }}
    defaultMode: 0440
{{- end }}
{{- if .Values.tls.peer.enabled }}
- name: peer-tls
  secret:
    secretName: {{ .Values.tls.peer.secretName }}
    defaultMode: 0440
{{- end }}
{{- end -}}
{{- define "kvstore.tlsMounts" -}}
{{- if .Values.tls.client.enabled }}
- name: client-tls
  mountPath: /etc/kvstore/tls/client
  readOnly: true
{{- end }}
{{- if .Values.tls.peer.enabled }}
- name: peer-tls
  mountPath: /etc/kvstore/tls/peer
  readOnly: true
{{- end }}
{{- end -}}

{{/*
kvstore.clientTlsEnv: the files the membership script and the test pod hand to the kvstore CLI
(--cacert, --cert, --key) to reach a TLS client port.
*/}}
{{- define "kvstore.clientTlsEnv" -}}
{{- if .Values.tls.client.enabled }}
- name: CLI_CACERT
  value: /etc/kvstore/tls/client/ca.crt
- name: CLI_CERT
  value: /etc/kvstore/tls/client/tls.crt
- name: CLI_KEY
  value: /etc/kvstore/tls/client/tls.key
{{- end }}
{{- end -}}

{{/* kvstore.podSecurityContext and kvstore.containerSecurityContext: the restrictive defaults. */}}
{{- define "kvstore.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}
{{- define "kvstore.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}
