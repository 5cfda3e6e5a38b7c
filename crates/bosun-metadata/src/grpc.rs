//! The gRPC services: Pixiu's `dubbo.networking.v1alpha1` ones as they were, and Bosun's
//! `bosun.metadata.v1` ones. All of them call the same [`MetadataCentre`].

use std::sync::Arc;

use bosun_store::Lease;
use tonic::service::Routes;
use tonic::{Request, Response, Status};

use crate::centre::MetadataCentre;
use crate::keys;
use crate::proto::bosun::metadata::v1 as bosun;
use crate::proto::dubbo::networking::v1alpha1 as dubbo;
use crate::watch::{Change, EventStream, list_then_watch};

/// `routes` (of a tonic server, such as the xDS server's) with every metadata service added.
pub fn add_services(routes: Routes, centre: Arc<MetadataCentre>) -> Routes {
    let service = Services(centre);
    routes
        .add_service(dubbo::service_metadata_service_server::ServiceMetadataServiceServer::new(service.clone()))
        .add_service(dubbo::service_name_mapping_service_server::ServiceNameMappingServiceServer::new(service.clone()))
        .add_service(bosun::service_metadata_service_server::ServiceMetadataServiceServer::new(service.clone()))
        .add_service(bosun::service_definition_service_server::ServiceDefinitionServiceServer::new(service.clone()))
        .add_service(bosun::service_name_mapping_service_server::ServiceNameMappingServiceServer::new(service))
}

/// The services' implementation over one centre.
#[derive(Clone)]
struct Services(Arc<MetadataCentre>);

fn ttl_seconds(lease: Lease) -> i64 {
    i64::try_from(lease.ttl.as_secs()).unwrap_or(i64::MAX)
}

fn event_type(change: &Change<'_>) -> bosun::EventType {
    match change {
        Change::Put { .. } => bosun::EventType::Put,
        Change::Deleted { .. } => bosun::EventType::Deleted,
    }
}

fn parts<'a>(change: &Change<'a>) -> (&'a bosun_store::Key, &'a [u8], i64) {
    match *change {
        Change::Put { key, data, revision } => (key, data, revision),
        Change::Deleted { key, revision } => (key, &[], revision),
    }
}

#[tonic::async_trait]
impl dubbo::service_metadata_service_server::ServiceMetadataService for Services {
    async fn publish(
        &self,
        request: Request<dubbo::PublishServiceMetadataRequest>,
    ) -> Result<Response<dubbo::PublishServiceMetadataResponse>, Status> {
        let r = request.into_inner();
        self.0.publish_metadata(&r.namespace, &r.application_name, &r.revision, &r.metadata_info).await?;
        Ok(Response::new(dubbo::PublishServiceMetadataResponse {}))
    }

    async fn get(
        &self,
        request: Request<dubbo::GetServiceMetadataRequest>,
    ) -> Result<Response<dubbo::GetServiceMetadataResponse>, Status> {
        let r = request.into_inner();
        let metadata_info = self.0.get_metadata(&r.namespace, &r.application_name, &r.revision).await?;
        Ok(Response::new(dubbo::GetServiceMetadataResponse { metadata_info }))
    }
}

#[tonic::async_trait]
impl dubbo::service_name_mapping_service_server::ServiceNameMappingService for Services {
    async fn register_service_app_mapping(
        &self,
        request: Request<dubbo::ServiceMappingRequest>,
    ) -> Result<Response<dubbo::ServiceMappingResponse>, Status> {
        let r = request.into_inner();
        self.0.register_mapping(&r.namespace, &r.application_name, &r.interface_names, "interfaceNames").await?;
        Ok(Response::new(dubbo::ServiceMappingResponse {}))
    }
}

#[tonic::async_trait]
impl bosun::service_metadata_service_server::ServiceMetadataService for Services {
    async fn publish(
        &self,
        request: Request<bosun::PublishServiceMetadataRequest>,
    ) -> Result<Response<bosun::PublishServiceMetadataResponse>, Status> {
        let r = request.into_inner();
        let lease = self.0.publish_metadata(&r.namespace, &r.application_name, &r.revision, &r.metadata_info).await?;
        Ok(Response::new(bosun::PublishServiceMetadataResponse { ttl_seconds: ttl_seconds(lease) }))
    }

    async fn get(
        &self,
        request: Request<bosun::GetServiceMetadataRequest>,
    ) -> Result<Response<bosun::GetServiceMetadataResponse>, Status> {
        let r = request.into_inner();
        let metadata_info = self.0.get_metadata(&r.namespace, &r.application_name, &r.revision).await?;
        Ok(Response::new(bosun::GetServiceMetadataResponse { metadata_info }))
    }

    type WatchStream = EventStream<bosun::ServiceMetadataEvent>;

    async fn watch(
        &self,
        request: Request<bosun::WatchServiceMetadataRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let r = request.into_inner();
        let prefix = if r.revision.is_empty() {
            keys::metadata_prefix(&r.namespace, &r.application_name)?
        } else {
            let key = keys::metadata(&r.namespace, &r.application_name, &r.revision)?;
            // The prefix of one key also covers longer revisions; the filter below drops them.
            bosun_store::Prefix::name(key.kind(), key.namespace(), key.name()).map_err(crate::MetadataError::from)?
        };
        let only_revision = (!r.revision.is_empty()).then_some(r.revision);
        let stream = list_then_watch(self.0.store().clone(), prefix, move |change| {
            let kind = event_type(&change);
            let (key, data, store_revision) = parts(&change);
            let (namespace, application, revision) = keys::parse_metadata(key)?;
            if only_revision.as_deref().is_some_and(|only| only != revision) {
                return None;
            }
            Some(bosun::ServiceMetadataEvent {
                r#type: kind.into(),
                namespace: namespace.to_owned(),
                application_name: application.to_owned(),
                revision: revision.to_owned(),
                metadata_info: String::from_utf8_lossy(data).into_owned(),
                store_revision,
            })
        });
        Ok(Response::new(stream))
    }

    async fn heartbeat(
        &self,
        request: Request<bosun::HeartbeatRequest>,
    ) -> Result<Response<bosun::HeartbeatResponse>, Status> {
        let r = request.into_inner();
        let lease = self.0.heartbeat(&r.namespace, &r.application_name).await?;
        Ok(Response::new(bosun::HeartbeatResponse { ttl_seconds: ttl_seconds(lease) }))
    }
}

#[tonic::async_trait]
impl bosun::service_definition_service_server::ServiceDefinitionService for Services {
    async fn publish(
        &self,
        request: Request<bosun::PublishServiceDefinitionRequest>,
    ) -> Result<Response<bosun::PublishServiceDefinitionResponse>, Status> {
        let r = request.into_inner();
        let application = match (r.namespace.is_empty(), r.application_name.is_empty()) {
            (true, true) => None,
            (false, false) => Some((r.namespace.as_str(), r.application_name.as_str())),
            (true, false) => return Err(Status::invalid_argument("namespace: must be set with application_name")),
            (false, true) => return Err(Status::invalid_argument("application_name: must be set with namespace")),
        };
        let lease = self.0.publish_definition(&r.identifier, &r.service_definition, application).await?;
        Ok(Response::new(bosun::PublishServiceDefinitionResponse { ttl_seconds: ttl_seconds(lease) }))
    }

    async fn get(
        &self,
        request: Request<bosun::GetServiceDefinitionRequest>,
    ) -> Result<Response<bosun::GetServiceDefinitionResponse>, Status> {
        let service_definition = self.0.get_definition(&request.into_inner().identifier).await?;
        Ok(Response::new(bosun::GetServiceDefinitionResponse { service_definition }))
    }

    type WatchStream = EventStream<bosun::ServiceDefinitionEvent>;

    async fn watch(
        &self,
        request: Request<bosun::WatchServiceDefinitionRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let r = request.into_inner();
        if !r.prefix {
            keys::required("identifier", &r.identifier)?;
        }
        let prefix = keys::definition_prefix(&r.identifier)?;
        let exact = (!r.prefix).then_some(r.identifier);
        let stream = list_then_watch(self.0.store().clone(), prefix, move |change| {
            let kind = event_type(&change);
            let (key, data, store_revision) = parts(&change);
            if exact.as_deref().is_some_and(|exact| exact != key.name()) {
                return None;
            }
            Some(bosun::ServiceDefinitionEvent {
                r#type: kind.into(),
                identifier: key.name().to_owned(),
                service_definition: String::from_utf8_lossy(data).into_owned(),
                store_revision,
            })
        });
        Ok(Response::new(stream))
    }
}

#[tonic::async_trait]
impl bosun::service_name_mapping_service_server::ServiceNameMappingService for Services {
    async fn register_service_app_mapping(
        &self,
        request: Request<bosun::RegisterServiceAppMappingRequest>,
    ) -> Result<Response<bosun::RegisterServiceAppMappingResponse>, Status> {
        let r = request.into_inner();
        let lease =
            self.0.register_mapping(&r.namespace, &r.application_name, &r.interface_names, "interface_names").await?;
        Ok(Response::new(bosun::RegisterServiceAppMappingResponse { ttl_seconds: ttl_seconds(lease) }))
    }

    async fn get(
        &self,
        request: Request<bosun::GetServiceAppMappingRequest>,
    ) -> Result<Response<bosun::GetServiceAppMappingResponse>, Status> {
        let r = request.into_inner();
        let application_names = self.0.get_mapping(&r.namespace, &r.interface_name).await?;
        Ok(Response::new(bosun::GetServiceAppMappingResponse { application_names }))
    }

    type WatchStream = EventStream<bosun::ServiceAppMappingEvent>;

    async fn watch(
        &self,
        request: Request<bosun::GetServiceAppMappingRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let r = request.into_inner();
        let prefix = keys::mapping_prefix(&r.namespace, &r.interface_name)?;
        let stream = list_then_watch(self.0.store().clone(), prefix, move |change| {
            let kind = event_type(&change);
            let (key, _, store_revision) = parts(&change);
            let (namespace, interface, application) = keys::parse_mapping(key)?;
            (interface == r.interface_name).then(|| bosun::ServiceAppMappingEvent {
                r#type: kind.into(),
                namespace: namespace.to_owned(),
                interface_name: interface.to_owned(),
                application_name: application.to_owned(),
                store_revision,
            })
        });
        Ok(Response::new(stream))
    }
}
