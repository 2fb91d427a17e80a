{{/* gitops.env is the selected environment's settings; rendering fails on an unknown name. */}}
{{- define "gitops.env" -}}
{{- $env := index .Values.environments .Values.environment -}}
{{- if not $env -}}
{{- fail (printf "environment must be one of %s (got %q): pass -f values-<env>.yaml" (keys .Values.environments | sortAlpha | join ", ") .Values.environment) -}}
{{- end -}}
{{- toYaml $env -}}
{{- end -}}

{{/* gitops.labels: the labels of every object of this chart. */}}
{{- define "gitops.labels" -}}
app.kubernetes.io/part-of: kvstore
app.kubernetes.io/managed-by: {{ .Release.Service }}
kvstore.example.org/environment: {{ .Values.environment }}
{{- end -}}

{{/*
gitops.syncPolicy: automated with prune and self-heal where the environment auto-syncs;
otherwise only the retry and sync options, so a sync happens when the pipeline asks for one.
Call with (dict "ctx" . "options" (list ...)).
*/}}
{{- define "gitops.syncPolicy" -}}
{{- $env := include "gitops.env" .ctx | fromYaml -}}
syncPolicy:
  {{- if $env.autoSync }}
  automated:
    prune: true
    selfHeal: true
  {{- end }}
  syncOptions:
    {{- range .options }}
    - {{ . }}
    {{- end }}
  retry:
    limit: 5
    backoff:
      duration: 10s
      factor: 2
      maxDuration: 3m
{{- end -}}
