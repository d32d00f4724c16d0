{{/* Labels every object of the release carries. */}}
{{- define "grove-py.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: grove-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: grove
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The selector of the operator's pods (stable: Deployment selectors are immutable). */}}
{{- define "grove-py.selectorLabels" -}}
app.kubernetes.io/name: grove-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
The release's labels, then an object's own labels from values, then fixed ones: (list $ own fixed), where
own and fixed are maps (fixed may be left out). Later ones win, so a Grove values file's labels (which also
set app.kubernetes.io/name and /component) never produce duplicate keys.
*/}}
{{- define "grove-py.labelsWith" -}}
{{- $root := index . 0 -}}
{{- $labels := fromYaml (include "grove-py.labels" $root) -}}
{{- range (rest .) }}{{ $labels = mergeOverwrite $labels (deepCopy (. | default dict)) }}{{ end -}}
{{- toYaml $labels -}}
{{- end -}}

{{/* repository:tag, or repository@sha256:… for a digest; the tag defaults to the chart's appVersion. */}}
{{- define "grove-py.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if hasPrefix "sha256:" $tag -}}
{{ required "image.repository is required" .Values.image.repository }}@{{ $tag }}
{{- else -}}
{{ required "image.repository is required" .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end -}}

{{/* The certificate mode: auto, manual or certManager. */}}
{{- define "grove-py.certMode" -}}
{{- $mode := .Values.config.server.webhooks.certProvisionMode | default "auto" -}}
{{- if not (has $mode (list "auto" "manual" "certManager")) -}}
{{- fail (printf "config.server.webhooks.certProvisionMode: %q is not one of auto, manual, certManager" $mode) -}}
{{- end -}}
{{- $mode -}}
{{- end -}}

{{/* The cert-manager Certificate's name (its Secret is config.server.webhooks.secretName). */}}
{{- define "grove-py.certificateName" -}}
grove-operator-serving-cert
{{- end -}}

{{/* Annotations of every webhook configuration: cert-manager's CA injection in certManager mode. */}}
{{- define "grove-py.webhookAnnotations" -}}
{{- $root := index . 0 -}}
{{- $own := index . 1 | default dict -}}
{{- $out := deepCopy $own -}}
{{- if eq (include "grove-py.certMode" $root) "certManager" -}}
{{- $_ := set $out "cert-manager.io/inject-ca-from" (printf "%s/%s" $root.Release.Namespace (include "grove-py.certificateName" $root)) -}}
{{- end -}}
{{- with $out }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
The OperatorConfiguration: .Values.config, plus what follows from the release (namespace, Service, mode).
Keys the operator does not know (e.g. Grove's `debugging`) are kept and ignored by it.
*/}}
{{- define "grove-py.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- $hooks := $config.server.webhooks -}}
{{- $_ := set $hooks "mode" "service" -}}
{{- $_ := set $hooks "namespace" .Release.Namespace -}}
{{- $_ := set $hooks "serviceName" .Values.service.name -}}
{{- $mode := include "grove-py.certMode" . -}}
{{- $_ := set $hooks "certProvisionMode" (ternary "auto" "manual" (eq $mode "auto")) -}}
{{- $_ := set $config.leaderElection "resourceNamespace" .Release.Namespace -}}
{{- $_ := set $config.server.metrics "secure" .Values.metrics.secure -}}
{{- if and (hasKey $config "initContainer") (not $config.initContainer.image) -}}
{{- $_ := set $config "initContainer" (omit $config.initContainer "image") -}}
{{- end -}}
{{- $_ := set $config "apiVersion" "operator.config.grove.io/v1alpha1" -}}
{{- $_ := set $config "kind" "OperatorConfiguration" -}}
{{- toYaml $config -}}
{{- end -}}

{{/* The ConfigMap's name changes with its content, so a new configuration rolls the operator. */}}
{{- define "grove-py.configMapName" -}}
grove-operator-config-{{ include "grove-py.config" . | sha256sum | trunc 8 }}
{{- end -}}

{{/* The webhook clientConfig for `path` (call with (list $ path)): the Service, port 443. */}}
{{- define "grove-py.clientConfig" -}}
{{- $root := index . 0 -}}
clientConfig:
  {{- with $root.Values.webhooks.caBundle }}
  caBundle: {{ . }}
  {{- end }}
  service:
    name: {{ $root.Values.service.name }}
    namespace: {{ $root.Release.Namespace }}
    port: 443
    path: {{ index . 1 }}
{{- end -}}

{{/* Whom the authorizer always allows: the operator itself and the exempt controllers (as a CEL list). */}}
{{- define "grove-py.trustedUsers" -}}
{{- $users := list (printf "system:serviceaccount:%s:%s" .Release.Namespace .Values.serviceAccount.name) -}}
{{- range .Values.config.authorizer.exemptServiceAccountUserNames -}}
{{- if not (has . $users) }}{{ $users = append $users . }}{{ end -}}
{{- end -}}
{{- $quoted := list -}}
{{- range $users }}{{ $quoted = append $quoted (printf "'%s'" .) }}{{ end -}}
[{{ join ", " $quoted }}]
{{- end -}}

{{/* Namespaces the webhooks never see: kube-system (and, for the authorizer, the release's own). */}}
{{- define "grove-py.notKubeSystem" -}}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: [kube-system]
{{- end -}}
