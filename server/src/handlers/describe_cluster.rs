//! DescribeCluster (key 60): this single node is the whole cluster and its controller.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::sb;
use crate::broker::Broker;

pub fn handle(broker: &Arc<Broker>, req: DescribeClusterRequest) -> DescribeClusterResponse {
    let mut resp = DescribeClusterResponse::default();
    resp.endpoint_type = req.endpoint_type;
    resp.cluster_id = sb(broker.cluster_id.clone());
    resp.controller_id = BrokerId(broker.config.node_id);
    let mut b = DescribeClusterBroker::default();
    b.broker_id = BrokerId(broker.config.node_id);
    b.host = sb(broker.config.advertised_host.clone());
    b.port = broker.config.advertised_port;
    resp.brokers = vec![b];
    resp
}
